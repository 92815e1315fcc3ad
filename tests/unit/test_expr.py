"""The rule expression parser: examples, errors with offsets, and a parse/unparse property."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pathways.definition import expr as E
from pathways.definition.durations import Duration


def shape(node):
    """The tree without character spans, for comparing trees."""
    if isinstance(node, E.Num):
        return ("num", node.value, node.unit)
    if isinstance(node, E.Str):
        return ("str", node.value)
    if isinstance(node, E.Bool):
        return ("bool", node.value)
    if isinstance(node, E.Dur):
        return ("dur", node.value)
    if isinstance(node, E.Name):
        return ("name", node.name)
    if isinstance(node, E.Call):
        return ("call", node.func, tuple(shape(a) for a in node.args))
    if isinstance(node, E.Not):
        return ("not", shape(node.operand))
    if isinstance(node, E.Neg):
        return ("neg", shape(node.operand))
    if isinstance(node, E.BoolOp):
        return (node.op, tuple(shape(o) for o in node.operands))
    if isinstance(node, E.Compare):
        return ("cmp", node.op, shape(node.left), shape(node.right))
    if isinstance(node, E.InList):
        return ("in", node.negated, shape(node.item), tuple(shape(v) for v in node.values))
    if isinstance(node, E.Arith):
        return ("arith", node.op, shape(node.left), shape(node.right))
    raise TypeError(node)


def test_issue_examples_parse_to_the_expected_trees():
    assert shape(E.parse("hba1c_mmol_mol > 53 and age_years < 70")) == (
        "and",
        (("cmp", ">", ("name", "hba1c_mmol_mol"), ("num", 53, None)), ("cmp", "<", ("name", "age_years"), ("num", 70, None))),
    )
    assert shape(E.parse("change(body_weight_kg, 3d) > 2")) == (
        "cmp", ">", ("call", "change", (("name", "body_weight_kg"), ("dur", Duration(3, "d")))), ("num", 2, None),
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("not a and b or c", ("or", (("and", (("not", ("name", "a")), ("name", "b"))), ("name", "c")))),
        ("a or b or c", ("or", (("name", "a"), ("name", "b"), ("name", "c")))),
        ("x * 2 / 3 - 1 > 4", ("cmp", ">", ("arith", "-", ("arith", "/", ("arith", "*", ("name", "x"), ("num", 2, None)), ("num", 3, None)), ("num", 1, None)), ("num", 4, None))),
        ("pct_change(egfr, 365d) < -20 %", ("cmp", "<", ("call", "pct_change", (("name", "egfr"), ("dur", Duration(365, "d")))), ("num", -20, "%"))),
        ("x > 45 mL/min/{1.73_m2}", ("cmp", ">", ("name", "x"), ("num", 45, "mL/min/{1.73_m2}"))),
        ('simms_class in ["2", "3"] or missing(simms_class)', ("or", (("in", False, ("name", "simms_class"), (("str", "2"), ("str", "3"))), ("call", "missing", (("name", "simms_class"),))))),
        ("x not in [1, -2.5]", ("in", True, ("name", "x"), (("num", 1, None), ("num", -2.5, None)))),
        ("android > 3 and notable", ("and", (("cmp", ">", ("name", "android"), ("num", 3, None)), ("name", "notable")))),
        ("count(exacerbation, 1y) >= 2", ("cmp", ">=", ("call", "count", (("name", "exacerbation"), ("dur", Duration(1, "y")))), ("num", 2, None))),
        ("days_since(foot_exam) > 6mo", ("cmp", ">", ("call", "days_since", (("name", "foot_exam"),)), ("dur", Duration(6, "mo")))),
        ("financing.wlz_eligible", ("name", "financing.wlz_eligible")),
        ("ccq_score >= 2 {score}", ("cmp", ">=", ("name", "ccq_score"), ("num", 2, "{score}"))),
        ("bp in [140 mm[Hg], 90 mm[Hg]]", ("in", False, ("name", "bp"), (("num", 140, "mm[Hg]"), ("num", 90, "mm[Hg]")))),
    ],
)
def test_parses(text, expected):
    assert shape(E.parse(text)) == expected


@pytest.mark.parametrize(
    "text, message, offset, hint",
    [
        ("x >", "the expression ends too early", 3, "expected"),
        ("x = 3", "'=' is not a comparison", 2, "write '==' to compare"),
        ("x > 3 && y", "unexpected character '&'", 6, "use 'and', 'or', 'not'"),
        ("(x > 3", "the expression ends too early", 6, "expected"),
        ("x > > 3", "unexpected '>'", 4, "expected"),
        ("   ", "empty expression", 0, "write a condition"),
        ("x > 3 4", "unexpected '4'", 6, "expected"),
        ("x in [1 kg]]", "unexpected ']'", 11, "expected"),
    ],
)
def test_syntax_errors_point_at_the_offending_character(text, message, offset, hint):
    with pytest.raises(E.ExprSyntaxError) as info:
        E.parse(text)
    assert (info.value.message, info.value.offset) == (message, offset)
    assert info.value.hint.startswith(hint)


def test_expressions_are_never_evaluated_as_python():
    # a Python expression that would have side effects is just a syntax error here
    with pytest.raises(E.ExprSyntaxError):
        E.parse("__import__('os').system('true')")


# -- property: unparse then parse gives the same tree --------------------------------------

KEYWORDS = {"and", "or", "not", "in", "true", "false"}
names = st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z][a-z0-9_]{0,5})?", fullmatch=True).filter(
    lambda n: n.split(".")[0] not in KEYWORDS and all(p not in KEYWORDS for p in n.split("."))
)
numbers = st.one_of(st.integers(0, 10**6), st.decimals(0, 10**5, places=2).map(float))
units = st.sampled_from([None, "kg", "mmol/mol", "%", "mL/min/{1.73_m2}", "a", "mm[Hg]", "{score}"])
leaves = st.one_of(
    st.builds(lambda v, u: E.Num(v, u, E.Span(0, 0)), numbers, units),
    st.builds(lambda v: E.Str(v, E.Span(0, 0)), st.from_regex(r"[A-Za-z0-9 _.-]{0,8}", fullmatch=True)),
    st.builds(lambda v: E.Bool(v, E.Span(0, 0)), st.booleans()),
    st.builds(lambda n, u: E.Dur(Duration(n, u), E.Span(0, 0)), st.integers(0, 999), st.sampled_from(["d", "w", "mo", "y"])),
    st.builds(lambda n: E.Name(n, E.Span(0, 0)), names),
)
literals = st.one_of(
    st.builds(lambda v, u: E.Num(v, u, E.Span(0, 0)), numbers, st.sampled_from([None, "kg", "%", "mm[Hg]"])),
    st.builds(lambda v: E.Str(v, E.Span(0, 0)), st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True)),
)
S = E.Span(0, 0)


def _extend(children):
    return st.one_of(
        st.builds(lambda o: E.Not(o, S), children),
        st.builds(lambda o: E.Neg(o, S), children.filter(lambda c: not isinstance(c, E.Num))),
        st.builds(lambda op, xs: E.BoolOp(op, tuple(xs), S), st.sampled_from(["and", "or"]), st.lists(children, min_size=2, max_size=3)),
        st.builds(lambda op, a, b: E.Compare(op, a, b, S), st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), children, children),
        st.builds(lambda op, a, b: E.Arith(op, a, b, S), st.sampled_from(["+", "-", "*", "/"]), children, children),
        st.builds(lambda a, vs, neg: E.InList(a, tuple(vs), neg, S), children, st.lists(literals, max_size=3), st.booleans()),
        st.builds(lambda f, args: E.Call(f, tuple(args), S), st.sampled_from(sorted(E.FUNCTIONS)), st.lists(children, min_size=1, max_size=2)),
    )


trees = st.recursive(leaves, _extend, max_leaves=12)


def normalise(node):
    """Nested and-in-and (or-in-or) is the same condition flattened; the parser flattens it."""
    s = shape(node)

    def flat(t):
        if isinstance(t, tuple) and t and t[0] in ("and", "or") and len(t) == 2 and isinstance(t[1], tuple):
            items = []
            for child in t[1]:
                child = flat(child)
                if isinstance(child, tuple) and child and child[0] == t[0]:
                    items.extend(child[1])
                else:
                    items.append(child)
            return (t[0], tuple(items))
        if isinstance(t, tuple):
            return tuple(flat(c) for c in t)
        return t

    return flat(s)


@settings(max_examples=300, deadline=None)
@given(trees)
def test_unparse_then_parse_gives_the_same_tree(tree):
    text = E.unparse(tree)
    assert normalise(E.parse(text)) == normalise(tree), text


def test_spans_cover_the_source_text():
    text = "hba1c_mmol_mol > 53 and age_years < 70"
    tree = E.parse(text)
    assert text[tree.span.start:tree.span.end] == text
    left = tree.operands[1].left
    assert text[left.span.start:left.span.end] == "age_years"
