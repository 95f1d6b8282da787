"""The message list that scales (issue 17 §1), offscreen, on generated data; the streaming test
on the real engine (a generated tiny model) and the real chat store: no mocks.

A 1000-message chat opens at its end and pages to its first message with the documents and
widgets bounded; the anchor keeps what is on screen still while rows are measured; streaming
updates the last row only and shows exactly what was saved; the drawn actions (clicked at their
painted place), the keyboard, the menu, text selection; user Markdown; find over the data.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QPoint, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QAbstractSlider, QApplication, QMenu, QWidget

from app.core.chats import ChatStore, Message
from app.gui.chat.message_view import MessageView
from app.gui.chat.messages.render import MAX_SHOWN_LINES, Look, RenderCache
from app.testing.long_chat import long_chat_texts

WAIT = 60_000
STATS = {"generated_tokens": 180, "decode_tps": 24.5, "ttft_s": 0.31, "stop_reason": "eos"}


def messages(n: int) -> list[Message]:
    return [Message(i + 1, 1, role, text, stats=dict(STATS) if role == "assistant" else {})
            for i, (role, text) in enumerate(long_chat_texts(n))]


def who(m: Message) -> str:
    return "You" if m.role == "user" else "tinyllama"


@pytest.fixture
def view(qtbot) -> MessageView:
    v = MessageView()
    v.resize(900, 700)
    qtbot.addWidget(v)
    v.show()
    qtbot.waitExposed(v)
    return v


def painted(view: MessageView) -> list[int]:
    """Paint now; the ids of the rows painted."""
    view.viewport().repaint()
    return [view.messages.at(i).message_id for i in view.painted]


def page_up_to_top(qtbot, view: MessageView, first_id: int) -> int:
    bar = view.verticalScrollBar()
    pages = 0
    while not (bar.value() == 0 and first_id in painted(view)):
        bar.triggerAction(QAbstractSlider.SliderAction.SliderPageStepSub)
        QApplication.processEvents()  # the idle rendering ahead runs too
        pages += 1
        assert pages < 2000, "never reached the first message"
    return pages


def click_action(qtbot, view: MessageView, message_id: int, name: str) -> None:
    """Hover the row, then click its drawn button `name` where it is painted."""
    i = view.messages.row_of(message_id)
    view.ensure_visible(i)
    box = view.box(i)
    qtbot.mouseMove(view.viewport(), box.bubble.center())
    rect = dict(box.buttons)[name]
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_a_1000_message_chat_opens_at_its_end_and_pages_to_its_first_message_bounded(
        qtbot, view):
    chat = messages(1000)
    view.set_conversation(chat, who)
    shown = painted(view)
    bar = view.verticalScrollBar()
    # The end at once: the last message painted, scrolled to the bottom; only a screenful
    # rendered (no document for the other ~990 rows).
    assert chat[-1].id in shown and bar.value() == bar.maximum() > 0
    assert view.box(len(chat) - 1).bubble.bottom() <= view.viewport().height()
    assert len(shown) < 20 and view.cache.made <= len(shown) + 40
    widgets = len(view.findChildren(QWidget))

    pages = page_up_to_top(qtbot, view, chat[0].id)
    assert pages > 50 and bar.value() == 0
    assert view.visible_ids()[0] == chat[0].id
    assert view.box(0).bubble.top() >= 0  # the first message whole at the top
    # Every row was rendered on the way, yet what is held stays bounded: the LRU cache's
    # messages, their documents (a few per message), and no widget per message.
    assert view.cache.made >= 1000
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # evicted documents
    assert len(view.cache) <= 128 and view.cache.documents() <= 512
    assert len(view.findChildren(QWidget)) == widgets
    # Every row the pages went through has its exact height now (the last few may have been
    # measured before the scroll bar appeared and narrowed the column, then not seen again).
    assert all(view.layout_.measured[:-10])


def test_rows_measured_above_the_viewport_do_not_move_what_is_on_screen(qtbot, view):
    chat = messages(1000)
    view.set_conversation(chat, who)
    painted(view)
    view.verticalScrollBar().setValue(view.verticalScrollBar().maximum() // 2)
    shown = painted(view)
    anchor = shown[1]
    i = view.messages.row_of(anchor)
    y_before = view.box(i).bubble.top()
    unmeasured = sum(1 for m in view.layout_.measured if not m)
    # Render every row above (as scrolling up would): their heights change from the estimate.
    for row in range(i):
        view.rendered(row)
    view._settle()
    assert sum(1 for m in view.layout_.measured if not m) < unmeasured - 100
    assert view.box(i).bubble.top() == y_before
    assert painted(view)[1] == anchor


def test_streaming_updates_the_last_row_only_and_shows_what_was_saved(qtbot, view, home,
                                                                        tiny_model):
    from app.core.turns import ModelRef, TurnOptions, TurnRequest
    from app.gui.workers import EngineWorker

    store = ChatStore()
    conv = store.create_conversation(title="stream")
    for role, text in long_chat_texts(200):
        store.add_message(conv.id, role, text, stats=dict(STATS) if role == "assistant" else None)
    store.add_message(conv.id, "user", "tell me a story")
    view.set_conversation(store.messages(conv.id), who)
    painted(view)
    writer = store.begin_reply(conv.id, stats={"model": "tiny"})
    view.begin_stream(store.message(writer.message_id), "tiny")
    view.set_busy(True)
    assert writer.message_id in painted(view)
    rendered = {i: view.cache.peek(i) for i in view.visible_ids()}
    heights = {i: view.layout_.heights[view.messages.row_of(i)] for i in rendered}
    streamed: list[str] = []
    shown: list[str] = []  # the row's text each time the view updated it
    view.messages.dataChanged.connect(
        lambda top, _bottom, _roles=(): shown.append(view.messages.at(top.row()).text))

    def on_tokens(_rid: int, text: str) -> None:
        streamed.append(text)
        view.append(text)

    worker = EngineWorker(coalesce_ms=20)
    try:
        worker.tokens.connect(on_tokens)
        request = TurnRequest(ModelRef("tiny", tiny_model), prompt="Once upon a time",
                              options=TurnOptions(overrides={"threads": 1, "context": 512,
                                                             "max_tokens": 120, "seed": 5}))
        with qtbot.waitSignal(worker.finished, timeout=WAIT):
            worker.generate(request, writer)
        # The streamed pieces reach the row through the view's coalescing timer (not the end).
        qtbot.waitUntil(lambda: view.row(writer.message_id).text == "".join(streamed),
                        timeout=WAIT)
    finally:
        assert worker.dispose()
    saved = store.message(writer.message_id)
    assert saved.content and len(streamed) > 1
    # The row grew while the reply streamed (each update a prefix of the reply), it is painted
    # and in view at the end, and no other row was rendered again or changed height.
    assert shown and all(saved.content.startswith(t) for t in shown)
    assert writer.message_id in painted(view)
    assert view.visible_ids()[-1] == writer.message_id and view.at_bottom()
    for mid, item in rendered.items():  # the same documents: updated in place, not made again
        assert view.cache.peek(mid) is item
        if mid != writer.message_id:
            assert view.layout_.heights[view.messages.row_of(mid)] == heights[mid]
    assert view.layout_.heights[-1] > heights[writer.message_id]
    # The end: what the view holds (streamed pieces, none given at the end) is what was saved.
    view.end_stream(saved.state, saved.stats)
    view.set_busy(False)
    assert view.row(writer.message_id).text == "".join(streamed) == saved.content
    assert "120 tokens" in view.footer_text(writer.message_id)
    store.close()


def test_the_drawn_actions_edit_regenerate_copy_inspect_and_stop(qtbot, view):
    chat = messages(6)
    view.set_conversation(chat, who)
    painted(view)
    user, reply, last = chat[4], chat[3], chat[5]
    edits, regens, inspects = [], [], []
    view.editRequested.connect(edits.append)
    view.regenerateRequested.connect(regens.append)
    view.inspectRequested.connect(inspects.append)

    click_action(qtbot, view, user.id, "edit")
    click_action(qtbot, view, last.id, "regenerate")
    click_action(qtbot, view, last.id, "inspect")
    click_action(qtbot, view, user.id, "copy")
    assert (edits, regens, inspects) == ([user.id], [last.id], [last.id])
    assert QGuiApplication.clipboard().text() == user.content
    # Only the last reply has Regenerate; none while a reply is written.
    i = view.messages.row_of(reply.id)
    assert "regenerate" not in dict(view.box(i).buttons)
    view.set_busy(True)
    click_action(qtbot, view, user.id, "edit")
    view.trigger(last.id, "regenerate")
    assert (edits, regens) == ([user.id], [last.id])
    # A code block's own Copy, clicked where it is drawn.
    coded = next(m for m in chat if "```" in m.content)
    i = view.messages.row_of(coded.id)
    view.ensure_visible(i)
    part, rect = view.box(i).code_copy[0]
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert QGuiApplication.clipboard().text() == view.code_blocks(coded.id)[0]
    assert QGuiApplication.clipboard().text() in coded.content
    # Stop: a reply that was streaming ends interrupted, its text kept, the footer says so.
    view.set_busy(False)
    view.begin_stream(Message(100, 1, "assistant", "", state="streaming"), "tinyllama")
    assert view.footer_text(100) == "writing…"
    view.append("partial ")
    view.append("reply")
    view.end_stream("interrupted", {"stop_reason": "cancelled", "generated_tokens": 2})
    assert view.row(100).text == "partial reply"
    assert "stop: stopped" in view.footer_text(100) and "2 tokens" in view.footer_text(100)


def test_the_keyboard_moves_between_messages_copies_and_opens_the_actions(qtbot, view):
    chat = messages(40)
    view.set_conversation(chat, who)
    painted(view)
    view.setFocus()
    qtbot.waitUntil(view.hasFocus)
    assert view.current_id == chat[-1].id  # focus lands on the last visible message
    for _ in range(5):
        qtbot.keyClick(view, Qt.Key.Key_Up)
    assert view.current_id == chat[-6].id and chat[-6].id in view.visible_ids()
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.current_id == chat[-5].id
    qtbot.keyClick(view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text() == chat[-5].content
    qtbot.keyClick(view, Qt.Key.Key_Home)
    assert view.current_id == chat[0].id and chat[0].id in painted(view)
    qtbot.keyClick(view, Qt.Key.Key_End)
    assert view.current_id == chat[-1].id and view.at_bottom()
    # Enter opens the message's menu: every action is there.
    qtbot.keyClick(view, Qt.Key.Key_Return)
    menu = view.findChild(QMenu)
    qtbot.waitUntil(menu.isVisible)
    texts = [a.text() for a in menu.actions()]
    assert texts[0] == "&Copy message" and "&Select text…" in texts
    assert "&Regenerate" in texts and "Show the &prompt" in texts
    copies = [t for t in texts if t.startswith("Copy code block")]
    assert len(copies) == len(view.code_blocks(chat[-1].id))
    menu.close()


def test_select_text_opens_one_selectable_view_over_the_message(qtbot, view):
    chat = messages(10)
    view.set_conversation(chat, who)
    painted(view)
    target = chat[-1]
    i = view.messages.row_of(target.id)
    body = view.box(i).body
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=body.center())
    selector = view.selector
    assert selector is not None and selector.isVisible() and selector.message_id == target.id
    assert selector.geometry().intersects(body)
    selector.selectAll()
    selector.copy()
    copied = QGuiApplication.clipboard().text()
    assert copied.split()[:3] == target.content.split()[:3]  # the message's text, rendered
    qtbot.keyClick(selector, Qt.Key.Key_Escape)
    assert view.selector is None
    view.trigger(chat[-2].id, "select")
    assert view.selector.message_id == chat[-2].id
    assert len(view.findChildren(type(selector))) <= 2  # the closed one is being deleted


def test_user_messages_render_markdown_at_a_readable_width(qtbot, view):
    text = ("Please compare **these** for me, with `code` and a list:\n\n- the *first* idea\n"
            "- the second one, which is a rather long line that should wrap only where a "
            "reader expects it to wrap, not in a narrow bubble")
    view.set_conversation([Message(1, 1, "user", text), Message(2, 1, "user", "Hi")], who)
    painted(view)
    rendered = view.rendered(0)
    plain = rendered.parts[0].doc.toPlainText()
    assert "**" not in plain and "these" in plain and "`" not in plain and "- the" not in plain
    assert rendered.parts[0].doc.blockCount() >= 3  # the paragraph and the two list items
    column = view.painter.column(view.viewport().width())[1]
    long_box, short_box = view.box(0), view.box(1)
    assert long_box.bubble.width() >= int(column * 0.75) > 285  # was a ~285 px bubble
    assert short_box.bubble.width() < long_box.bubble.width()     # as wide as it needs
    assert long_box.bubble.right() == short_box.bubble.right()    # yours, on the right


def test_find_returns_every_match_goes_to_it_and_highlights_it(qtbot, view):
    chat = messages(1000)
    view.set_conversation(chat, who)
    painted(view)
    changes = []
    view.findChanged.connect(lambda cur, total: changes.append((cur, total)))
    needle = "Binary Search"
    expected = [(m.id, k) for m in chat for k in range(m.content.lower().count(needle.lower()))]
    assert view.find(needle) == len(expected) > 5
    assert [(m.message_id, m.nth) for m in view.matches()] == expected
    assert changes[-1] == (len(expected) - 1, len(expected))  # the one nearest the end
    # Back to the first match (wrapping round from the last), far up the chat: in view, drawn
    # with the strong highlight.
    view.find_next()
    assert view.find_state() == (0, len(expected))
    first = expected[0][0]
    assert first in painted(view)
    state = view.row_state(view.row(first))
    strong = [c for sels in state["selections"].values() for c, s in sels if s]
    assert len(strong) == 1 and strong[0].selectedText().lower() == needle.lower()
    view.find_previous()
    assert view.find_state()[0] == len(expected) - 1
    # The matches follow the messages: rows removed, a reply streaming in.
    total = len(expected)
    last_hit = expected[-1][0]
    view.remove_from(last_hit)
    gone = sum(1 for mid, _ in expected if mid >= last_hit)
    assert view.find_state() == (total - gone - 1, total - gone)
    view.find_next()  # wraps to the first, no stale row
    assert view.find_state()[0] == 0
    view.begin_stream(Message(2000, 1, "assistant", "", state="streaming"), "tinyllama")
    view.append("Now about binary search, once more.")
    qtbot.waitUntil(lambda: view.find_state()[1] == total - gone + 1, timeout=WAIT)
    assert view.find("no such words anywhere") == 0 and view.find_state() == (-1, 0)
    view.clear_find()
    assert changes[-1] == (-1, 0)


def test_a_streaming_reply_is_rendered_as_markdown_with_code_blocks(qtbot):
    """(Moved from test_gui_chat.py, where it tested the old bubble widgets.)"""
    app = QApplication.instance()
    cache = RenderCache()
    look = Look(app.font(), app.palette())
    reply = "Here is **code**:\n\n```python\ndef f():\n    return 1\n```\n\nDone, *really*."
    text = ""
    for i in range(0, len(reply), 3):  # arrives in small pieces, as tokens do
        text += reply[i:i + 3]
        item = cache.get(7, text, i + 1, 500, look, streaming=True)
    assert cache.get(7, text, len(reply) + 1, 500, look) is item  # the end of the stream
    assert cache.made == 1  # one message rendered, then updated in place
    kinds = [p.segment.kind for p in item.parts]
    assert kinds == ["text", "code", "text"]
    code = item.parts[1]
    assert code.segment.text == "def f():\n    return 1" and code.segment.lang == "python"
    assert code.doc.toPlainText() == code.segment.text
    block = code.doc.firstBlock()
    assert block.layout().formats()  # highlighted (Pygments' colours on "def")
    assert item.parts[0].doc.toPlainText().strip() == "Here is code:"  # Markdown, not asterisks
    assert item.parts[2].doc.toPlainText().strip() == "Done, really."


def test_a_huge_message_shows_its_start_and_copies_whole(qtbot, view):
    paste = "\n".join(f"line {i}: " + "x" * 50 for i in range(20_000))
    view.set_conversation([Message(1, 1, "user", paste), Message(2, 1, "assistant", "Too long.")],
                          who)
    assert 2 in painted(view)
    rendered = view.rendered(0)
    assert rendered.hidden_lines == 20_000 - MAX_SHOWN_LINES
    assert rendered.parts[0].doc.blockCount() <= MAX_SHOWN_LINES + 1
    view.trigger(1, "copy")
    assert QGuiApplication.clipboard().text() == paste
    assert view.find("line 19999:") == 1  # find searches the whole text, shown or not
    view.resize(700, 600)  # and a new width lays the rendered part out again, not re-parsed
    assert view.rendered(0) is rendered


def test_rows_removed_and_edited_keep_the_list_right(qtbot, view):
    chat = messages(30)
    view.set_conversation(chat, who)
    painted(view)
    view.remove_from(chat[20].id)
    assert view.message_ids() == [m.id for m in chat[:20]]
    assert view.layout_.total == sum(view.layout_.heights) and len(view.layout_) == 20
    view.update_message(chat[18].id, text="An **edited** question")
    assert view.row(chat[18].id).text == "An **edited** question"
    assert chat[18].id in painted(view)
    assert view.rendered(18).parts[0].doc.toPlainText() == "An edited question"
    view.set_dropped_turns(2)
    assert view.dropped_ids() == [m.id for m in chat[:4]]
    view.clear()
    assert view.rows() == [] and view.empty.isVisible()
    point = QPoint(10, 10)
    assert view.row_at(point) is None


def test_a_dark_palette_renders_the_code_again_in_a_dark_style(qtbot, view):
    from PySide6.QtGui import QColor, QPalette

    chat = [Message(1, 1, "assistant", "Code:\n\n```python\ndef f():\n    return 1\n```")]
    view.set_conversation(chat, who)
    painted(view)
    light = view.rendered(0)
    assert view.look.style == "default"
    before = {f.format.foreground().color().name()
              for f in light.parts[1].doc.firstBlock().layout().formats()}
    dark = QPalette(view.palette())
    dark.setColor(QPalette.ColorRole.Base, QColor("#1e1e1e"))
    dark.setColor(QPalette.ColorRole.Text, QColor("#e0e0e0"))
    view.setPalette(dark)
    assert view.look.style == "monokai" and view.look.dark
    again = view.rendered(0)
    assert again is not light  # rendered anew, with the dark style's colours
    colours = {f.format.foreground().color().name()
               for f in again.parts[1].doc.firstBlock().layout().formats()}
    assert before and colours and colours != before
    assert chat[0].id in painted(view)
