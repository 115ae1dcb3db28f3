"""A small, safe parser for 取数公式: `[12345办结件数]/[12345转办件数]*100`.

Grammar (recursive descent, nothing is ever passed to eval):
    expr   := term (('+' | '-') term)*
    term   := factor (('*' | '/') factor)*
    factor := ('+' | '-') factor | NUMBER | '[' NAME ']' | '(' expr ')'
Full-width brackets and the signs × ÷ － ＋ are accepted, as users type them in a Chinese IME.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from dataclasses import dataclass

_SIGNS = str.maketrans({"×": "*", "÷": "/", "－": "-", "—": "-", "【": "[", "】": "]", "（": "(", "）": ")"})
_TOKEN = re.compile(r"\s*(?:(\[[^\[\]]*\])|(\d+(?:\.\d+)?|\.\d+)|([-+*/()]))")


class FormulaError(ValueError):
    """A 取数公式 that cannot be parsed or evaluated; the message is Chinese and shown to the user."""


@dataclass(frozen=True)
class Formula:
    """A parsed formula: `names` are the 统计项 it references, in order of first use."""

    text: str
    tokens: tuple[str, ...]
    names: tuple[str, ...]

    def evaluate(self, values: dict[str, float]) -> float:
        """Evaluate with the unit's 统计项 values; raises FormulaError (Chinese) on a missing name or ÷ 0."""
        missing = [n for n in self.names if n not in values or values[n] is None or math.isnan(values[n])]
        if missing:
            raise FormulaError("工作统计表中找不到统计项：" + "、".join(f"[{n}]" for n in missing))
        parser = _Parser(self.tokens, values)
        result = parser.expr()
        return result


@functools.lru_cache(maxsize=4096)
def parse_formula(text: str) -> Formula:
    """Tokenise and syntax-check a formula; raises FormulaError with a Chinese message saying what is wrong.
    Cached: every unit's 绩效目标表 repeats the template's formulas, and a Formula is immutable."""
    s = unicodedata.normalize("NFKC", text).translate(_SIGNS).strip()
    tokens: list[str] = []
    pos = 0
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m or m.end() == pos:
            raise FormulaError(f"取数公式第 {pos + 1} 个字符“{s[pos]}”无法识别；只能使用 [统计项]、数字和 + - × ÷ ( )")
        tokens.append(m.group(1) or m.group(2) or m.group(3))
        pos = m.end()
        while pos < len(s) and s[pos].isspace():
            pos += 1
    if not tokens:
        raise FormulaError("取数公式为空")
    names = tuple(dict.fromkeys(_name(t) for t in tokens if t.startswith("[")))
    if any(not n for n in names):
        raise FormulaError("取数公式中有空的方括号 []，请填写统计项名称")
    formula = Formula(text, tuple(tokens), names)
    _Parser(formula.tokens, {n: 1.0 for n in names}, check_only=True).parse_all()
    return formula


def _name(token: str) -> str:
    return re.sub(r"\s+", "", token[1:-1])


class _Parser:
    def __init__(self, tokens: tuple[str, ...], values: dict[str, float], check_only: bool = False):
        self.tokens = tokens
        self.values = values
        self.pos = 0
        self.check_only = check_only

    def parse_all(self) -> float:
        value = self.expr()
        if self.pos != len(self.tokens):
            raise FormulaError(f"取数公式在“{self.tokens[self.pos]}”处多出内容，请检查括号和运算符")
        return value

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise FormulaError("取数公式不完整：结尾缺少数字、统计项或右括号")
        self.pos += 1
        return tok

    def expr(self) -> float:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            rhs = self.term()
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self) -> float:
        value = self.factor()
        while self.peek() in ("*", "/"):
            op = self.take()
            rhs = self.factor()
            if op == "*":
                value *= rhs
            elif rhs == 0 and not self.check_only:
                raise FormulaError("取数公式出现除以 0：分母统计项的值为 0，无法计算")
            else:
                value = value / rhs if rhs else value
        return value

    def factor(self) -> float:
        tok = self.take()
        if tok in ("+", "-"):
            v = self.factor()
            return v if tok == "+" else -v
        if tok == "(":
            v = self.expr()
            if self.take() != ")":
                raise FormulaError("取数公式括号不配对")
            return v
        if tok.startswith("["):
            return float(self.values[_name(tok)])
        if tok in ("*", "/", ")"):
            raise FormulaError(f"取数公式中“{tok}”的位置不对，缺少数字或统计项")
        return float(tok)
