"""The text-safety rules of streaming, on their own (the engine tests prove them end to end)."""

from app.core.streaming import StopMatcher, Utf8Assembler


def test_utf8_assembler_holds_back_a_split_character():
    data = "日本 é".encode()
    out = [Utf8Assembler()]
    asm = out[0]
    pieces = [asm.feed(data[i:i + 1]) for i in range(len(data))]
    pieces.append(asm.flush())
    assert "".join(pieces) == "日本 é"
    assert all("\ufffd" not in p for p in pieces)
    # The first two bytes of 日 produce nothing; the third completes the character.
    assert pieces[:3] == ["", "", "日"]


def test_utf8_assembler_replaces_invalid_bytes_once():
    asm = Utf8Assembler()
    assert asm.feed(b"a\xffb") == "a\ufffdb"
    assert asm.feed(b"\xe6\x97") == ""
    assert asm.flush() == "\ufffd"


def test_stop_string_never_leaks_even_partly():
    m = StopMatcher(("USER:",))
    shown = [m.feed(t) for t in ["Hello", " U", "SE", "R", ":", " more"]]
    assert "".join(shown) == "Hello "
    assert m.matched == "USER:"
    assert all("U" not in s for s in shown)


def test_held_back_text_is_released_when_it_cannot_become_a_stop():
    m = StopMatcher(("USER:",))
    assert m.feed("a US") == "a "
    assert m.feed("A") == "USA"
    assert m.feed(" US") == " "
    assert m.flush() == "US"


def test_earliest_of_several_stops_wins():
    m = StopMatcher(("###", "</s>"))
    assert m.feed("x </s> y ### z") == "x "
    assert m.matched == "</s>"


def test_no_stops_passes_everything():
    m = StopMatcher(())
    assert m.feed("abc") == "abc"
    assert m.flush() == ""
