"""Answer extraction and checking, one small pure function per protocol.

- choice tasks (LLM-Adapters): the FIRST match of the task's pattern (case-sensitive as the
  reference, or in any case);
- math word problems: the LAST number of the output (commas stripped), or the number stated
  after "#### " or "The answer is" (else the last), correct within 1e-3;
- MATH-500: the last \\boxed{} answer, normalised, compared as strings, numerically, then
  symbolically with math-verify;
- letter tasks: the first standalone letter A-D, or LLM-Adapters' first capital letter anywhere;
- log-likelihood multiple choice: acc and acc_norm (log-likelihood per character, as lm-eval);
- code: completion post-processing, and pass@k with the unbiased estimator of Chen et al. (2021).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

# --------------------------------------------------------------------------------------------
# Choice patterns


def first_match(output: str, pattern: str, any_case: bool = True) -> str | None:
    """The first match of `pattern` in `output` (lower-cased when matched in any case); None
    when there is none. LLM-Adapters matches case-sensitively: "Answer2" is no answer there."""
    m = re.search(pattern, output, flags=re.IGNORECASE if any_case else 0)
    if m is None:
        return None
    return m.group(0).lower() if any_case else m.group(0)


def first_letter(output: str, letters: str = "ABCD") -> str | None:
    """The first standalone capital letter among `letters` ("B", "(B)", "B)", "answer: B")."""
    m = re.search(rf"(?<![A-Za-z])([{letters}])(?![A-Za-z])", output)
    return m.group(1) if m else None


def first_capital(output: str, letters: str = "ABCDE") -> str | None:
    """LLM-Adapters' AQuA rule: the first of `letters` anywhere, inside words too ("[B]ill's")."""
    m = re.search(f"[{letters}]", output)
    return m.group(0) if m else None


def first_word(output: str) -> str | None:
    """The first whitespace-separated word, lower-cased, without surrounding punctuation."""
    for word in output.split():
        word = word.strip(".,;:!?()[]\"'").lower()
        if word:
            return word
    return None


# --------------------------------------------------------------------------------------------
# Numbers

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def last_number(output: str) -> float | None:
    """The last number in `output` after removing thousands commas."""
    found = _NUMBER.findall(output.replace(",", ""))
    return float(found[-1]) if found else None


_STATED = re.compile(r"(?:####|the answer is:?)\s*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)


def stated_number(output: str) -> float | None:
    """GSM8K's rule: the number after the first "#### N" or "The answer is N" when the output
    states one (text after it does not matter), else the last number of the output."""
    m = _STATED.search(output)
    if m:
        return parse_number(m.group(1))
    return last_number(output)


def parse_number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(str(text).replace(",", "").strip())
    except ValueError:
        return None


def numbers_match(pred: float | None, gold: float | None, tol: float = 1e-3) -> bool:
    """Within `tol`, bounds included (LLM-Adapters' ``abs(label - pred) <= 0.001``)."""
    return pred is not None and gold is not None and abs(pred - gold) <= tol


# --------------------------------------------------------------------------------------------
# MATH: boxed answers


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}, or \\boxed 5) in `text`."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = start + (len("\\boxed") if text.startswith("\\boxed", start) else len("\\fbox"))
    if i < len(text) and text[i] == " ":
        m = re.match(r" +([^\s$]+)", text[i:])
        return m.group(1) if m else None
    if i >= len(text) or text[i] != "{":
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None  # unbalanced: the answer was cut off


_TEXT_WRAP = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")


def normalize_math(answer: str) -> str:
    """Canonical string form of a MATH answer (spacing, \\left/\\right, dfrac, $, \\text{}...)."""
    s = answer.strip()
    s = re.sub(r"\\(?:text|mbox)\{\s[^{}]*\}(?:\^\{?\d\}?)?", "", s)  # units: "\text{ cm}^2"
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"\\left(?![a-zA-Z])", "", s)
    s = re.sub(r"\\right(?![a-zA-Z])", "", s)
    s = re.sub(r"\\[!,;: ]", "", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    prev = None
    while prev != s:
        prev, s = s, _TEXT_WRAP.sub(r"\1", s)
    s = re.sub(r"\^\s*\{?\\circ\}?", "", s)
    s = s.replace("\\%", "").replace("%", "")
    s = re.sub(r"\s+", "", s)
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\d)\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac\{([^{}]*)\}(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", s)
    if re.fullmatch(r"[a-zA-Z]=[^=]+", s):  # "x=5" -> "5"
        s = s.split("=", 1)[1]
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    s = re.sub(r"(?<![\d.])(\d+)\.0+(?!\d)", r"\1", s)
    s = re.sub(r"(?<![\d])\.(\d)", r"0.\1", s)
    s = s.rstrip(".")
    return s


def _math_value(s: str) -> float | None:
    m = re.fullmatch(r"(-?)\\frac\{(-?\d+(?:\.\d+)?)\}\{(-?\d+(?:\.\d+)?)\}", s)
    if m:
        den = float(m.group(3))
        if den == 0:
            return None
        value = float(m.group(2)) / den
        return -value if m.group(1) else value
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)/(-?\d+(?:\.\d+)?)", s)
    if m and float(m.group(2)) != 0:
        return float(m.group(1)) / float(m.group(2))
    return parse_number(s) if re.fullmatch(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", s) else None


def math_equal(pred: str | None, gold: str | None) -> bool:
    """Normalised string equality, numeric equality when both sides parse as numbers, and
    otherwise symbolic equality with math-verify (``\\sqrt{2}/2`` = ``\\frac{\\sqrt2}{2}``,
    ``(x+1)^2`` = ``x^2+2x+1``)."""
    if pred is None or gold is None:
        return False
    a, b = normalize_math(pred), normalize_math(gold)
    if a == b:
        return True
    va, vb = _math_value(a), _math_value(b)
    if va is not None and vb is not None:
        return math.isclose(va, vb, rel_tol=1e-6, abs_tol=1e-9)
    return symbolic_equal(pred, gold)


def symbolic_equal(pred: str, gold: str) -> bool:
    """math-verify's verdict on two LaTeX answers (the contents of \\boxed{}). Its time limits
    use SIGALRM, which only the main thread may set; elsewhere they are off."""
    import logging
    import threading

    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    limit = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        gold_parsed = parse(f"${gold}$", parsing_timeout=limit)
        pred_parsed = parse(f"${pred}$", parsing_timeout=limit)
        if not gold_parsed or not pred_parsed:
            return False
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=limit))
    except Exception:  # noqa: BLE001 - an unparsable answer is a wrong answer
        return False


# --------------------------------------------------------------------------------------------
# Log-likelihood multiple choice


def mc_predictions(logliks: Sequence[float], choices: Sequence[str]) -> tuple[int, int]:
    """(argmax log-likelihood, argmax log-likelihood per character of the choice text)."""
    if len(logliks) != len(choices) or not choices:
        raise ValueError(f"{len(logliks)} log-likelihoods for {len(choices)} choices")
    pred = max(range(len(choices)), key=lambda i: logliks[i])
    pred_norm = max(range(len(choices)), key=lambda i: logliks[i] / max(1, len(choices[i])))
    return pred, pred_norm


# --------------------------------------------------------------------------------------------
# Code


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


_FENCE = re.compile(r"```[ \t]*[\w+-]*[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)
# Top-level lines that belong to a solution: definitions, imports, decorators, comments, and
# simple assignments of constants (`MAX = 1000`, `regex = r"..."`).
_TOP_KEEP = re.compile(r"(?:(?:def|async\s+def|class|import|from)\b|@|#|[A-Za-z_][\w, ]*=(?!=))")


def _cut_body(text: str) -> str:
    """Keep the first line (it may continue the prompt's last line), then the indented lines up
    to the first non-blank line at column 0 (a top-level statement outside the function)."""
    lines = text.split("\n")
    kept = [lines[0]]
    for line in lines[1:]:
        if line.strip() and not line[0].isspace():
            break
        kept.append(line)
    return "\n".join(kept).rstrip() + "\n"


def _cut_functions(text: str) -> str:
    """From the first top-level def/class/import/assignment, keep definitions and their bodies;
    stop at the first other top-level statement (a call, `print(`, `assert`, `if __name__`, a
    fence)."""
    lines = text.split("\n")
    start = next((i for i, ln in enumerate(lines) if _TOP_KEEP.match(ln)), None)
    if start is None:
        return text.rstrip() + "\n"
    kept = []
    for line in lines[start:]:
        if line.strip() and not line[0].isspace() and not _TOP_KEEP.match(line):
            break
        kept.append(line)
    return "\n".join(kept).rstrip() + "\n"


def extract_code(output: str, mode: str = "body", entry_point: str | None = None) -> str:
    """Post-process a generated completion into the code that is run.

    mode "body": the completion continues a function whose header is in the prompt (HumanEval,
    synthetic code) - but a completion that redefines the function (`def <entry_point>(` at column
    0, e.g. from an instruction-tuned model, possibly in a ``` fence) is taken as whole functions.
    mode "function": the completion is self-contained code (MBPP).
    """
    text = output.replace("\r\n", "\n")
    fence = _FENCE.search(text)
    if fence and (mode == "function" or "def " in fence.group(1)):
        text = fence.group(1)
    redefines = entry_point is not None and re.search(
        rf"^(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", text, flags=re.MULTILINE
    )
    if mode == "function" or redefines:
        return _cut_functions(text)
    return _cut_body(text)
