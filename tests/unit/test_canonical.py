"""The fast canonical encoder is byte-identical to the rfc8785 reference."""

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from agileplus.core.canonical import MAX_SAFE_INTEGER, canonical_json, hashable

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.decimals(allow_nan=False)
_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


def _outcome(fn, value):
    try:
        return fn(value)
    except Exception as exc:  # noqa: BLE001 - both encoders must refuse the same inputs
        return type(exc).__name__


@settings(max_examples=400, deadline=None)
@given(_values)
def test_fast_encoder_matches_rfc8785_for_every_hashable_value(value):
    prepared = hashable(value)
    assert _outcome(canonical_json, prepared) == _outcome(rfc8785.dumps, prepared)


@given(st.dictionaries(st.text(alphabet=st.characters(min_codepoint=0xE000), max_size=3), st.integers(0, 9)))
def test_keys_outside_the_basic_plane_sort_in_utf16_order_like_rfc8785(value):
    assert canonical_json(value) == rfc8785.dumps(value)


def test_integers_beyond_the_safe_range_are_hashed_as_strings():
    assert hashable(MAX_SAFE_INTEGER + 1) == str(MAX_SAFE_INTEGER + 1)
    assert hashable(-MAX_SAFE_INTEGER) == -MAX_SAFE_INTEGER
