"""Shared moves for the browser tests."""


def sortable_drag(page, src, dst):
    """A mouse drag that SortableJS accepts in native and in fallback mode.

    Playwright's `drag_to` only satisfies native HTML5 drag and drop; SortableJS needs a
    small first move to start the drag, then steps over the target, then a nudge so it
    computes the drop position. The short waits let its animation frames run.
    """
    start, end = src.bounding_box(), dst.bounding_box()
    sx, sy = start["x"] + start["width"] / 2, start["y"] + start["height"] / 2
    tx, ty = end["x"] + end["width"] / 2, end["y"] + end["height"] / 2
    page.mouse.move(sx, sy)
    page.mouse.down()
    page.mouse.move(sx + 5, sy + 5, steps=2)
    page.wait_for_timeout(50)
    page.mouse.move(tx, ty, steps=10)
    page.wait_for_timeout(100)
    page.mouse.move(tx + 1, ty + 1)
    page.wait_for_timeout(50)
    page.mouse.up()
