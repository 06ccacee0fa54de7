// Touch and narrow screens. Phones show one column at a time (CSS scroll-snap): the
// stage switcher above the board jumps to a column and shows which one is in view
// (without JavaScript its links are plain #column-N anchors). Touch drags auto-scroll.
(function () {
  "use strict";

  let observer = null;

  function switcher() {
    return document.querySelector(".stage-switcher");
  }

  function markCurrent(stageId) {
    const nav = switcher();
    if (!nav) return;
    nav.querySelectorAll("a").forEach((link) => {
      if (link.dataset.stageId === stageId) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    });
  }

  // Follow the column the rep swipes to.
  function watchColumns() {
    const board = document.getElementById("board");
    if (observer) observer.disconnect();
    if (!board || !switcher() || typeof IntersectionObserver === "undefined") return;
    observer = new IntersectionObserver(
      (entries) => {
        entries.forEach((entry) => {
          if (entry.isIntersecting) markCurrent(entry.target.dataset.stageId);
        });
      },
      { root: board, threshold: 0.6 }
    );
    board.querySelectorAll("section.column").forEach((column) => observer.observe(column));
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest(".stage-switcher a");
    if (!link) return;
    const column = document.getElementById("column-" + link.dataset.stageId);
    if (!column) return;
    event.preventDefault();
    const reduce = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    column.scrollIntoView({ behavior: reduce ? "auto" : "smooth", block: "nearest", inline: "start" });
    markCurrent(link.dataset.stageId);
    const first = column.querySelector(".card");
    if (first) first.focus({ preventScroll: true });
  });

  // ----- Auto-scroll while a card is dragged by touch --------------------------------
  // SortableJS scrolls near the edges only for mouse drags in Chromium (it listens for
  // native dragover, which a touch drag never fires). While a touch drag is under way,
  // a finger near the board's side edges scrolls the board; near a column's top or
  // bottom edge, that column.
  const EDGE = 48; // px from an edge where scrolling starts
  const SPEED = 14; // px per frame at the very edge
  let finger = null;
  let frame = null;

  function speed(distance) {
    return distance < EDGE ? Math.ceil(SPEED * (1 - distance / EDGE)) : 0;
  }

  function step() {
    frame = null;
    const board = document.getElementById("board");
    if (!finger || !board || !document.body.classList.contains("is-dragging")) return;
    const box = board.getBoundingClientRect();
    const dx = speed(box.right - finger.x) - speed(finger.x - box.left);
    if (dx) board.scrollLeft += dx;
    const under = document.elementFromPoint(finger.x, finger.y);
    const list = under && under.closest("ol.cards");
    let dy = 0;
    if (list) {
      const rect = list.getBoundingClientRect();
      dy = speed(rect.bottom - finger.y) - speed(finger.y - rect.top);
      if (dy) list.scrollTop += dy;
    }
    if (dx || dy) frame = requestAnimationFrame(step);
  }

  document.addEventListener(
    "touchmove",
    (event) => {
      if (!document.body.classList.contains("is-dragging") || !event.touches.length) return;
      finger = { x: event.touches[0].clientX, y: event.touches[0].clientY };
      if (!frame) frame = requestAnimationFrame(step);
    },
    { passive: true }
  );
  const lift = () => {
    finger = null;
  };
  document.addEventListener("touchend", lift);
  document.addEventListener("touchcancel", lift);

  document.addEventListener("DOMContentLoaded", watchColumns);
  document.addEventListener("htmx:load", (event) => {
    const elt = event.detail.elt;
    if (elt && (elt.id === "board" || (elt.matches && elt.matches("section.column")))) watchColumns();
  });
})();
