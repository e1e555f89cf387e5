"""Running a grid: the grid and its expansion into cells (`grid`), checks before training
(`preflight`), a cell's cost preview (`cell_cost`), one cell top to bottom (`cell`,
`theory_cell`), the driver (`runner`), the saved adapter's stamp and location (`adapter_stamp`,
`adapter_paths`), stale scores (`stale`), the live view (`live`) and where cells run
(`executors/`).

May import everything below it (ground, config, models, processes, costs, methods, tasks,
results); nothing below imports it. The executors run jobs through `executors.worker` and never
import the runner.
"""
