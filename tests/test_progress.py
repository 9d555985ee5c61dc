"""Progress bars: live on a terminal, a line now and then in a log (each redraw there is a line of its own)."""

from __future__ import annotations

import io

from cosa_edge.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def redraws(stream: io.StringIO) -> int:
    return stream.getvalue().count("\r")


def test_a_log_gets_the_first_and_last_state_a_terminal_every_update() -> None:
    log, terminal = io.StringIO(), Terminal()
    for _ in progress_bar(range(500), file=log, miniters=1, desc="epoch 1/1"):
        pass
    for _ in progress_bar(range(500), file=terminal, miniters=1, mininterval=0, desc="epoch 1/1"):
        pass
    assert redraws(log) <= 3  # opened, (at most one timed redraw), closed: not one a batch
    assert "500/500" in log.getvalue() and "#" in log.getvalue()  # ASCII bar, final count shown
    assert redraws(terminal) > 100


def test_options_given_by_the_caller_win_and_a_stream_without_isatty_counts_as_a_log() -> None:
    class Bare:  # a file-like object with write and flush only
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            pass

    bare = Bare()
    bar = progress_bar(total=10, file=bare, ascii=False)
    assert bar.mininterval == 60.0 and bar.ascii is False
    bar.close()


def test_a_new_postfix_each_step_does_not_redraw_a_log() -> None:
    # Training sets the batch's loss as the postfix every batch; tqdm redraws on set_postfix by default.
    log, terminal = io.StringIO(), Terminal()
    for bar in (progress_bar(range(200), file=log, miniters=1),
                progress_bar(range(200), file=terminal, miniters=1, mininterval=0)):
        for step in bar:
            bar.set_postfix(loss=f"{1 / (step + 1):.4f}")
        bar.close()
    assert redraws(log) <= 3
    assert "loss=0.0050" in log.getvalue()  # the last postfix is in the closing line
    assert redraws(terminal) > 200  # a terminal still shows every loss as it comes
