// Narrow screens show one column at a time (CSS scroll-snap). The stage switcher above
// the board jumps to a column and shows which one is in view. Without JavaScript its
// links still work as plain #column-N anchors.
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

  document.addEventListener("DOMContentLoaded", watchColumns);
  document.addEventListener("htmx:load", (event) => {
    const elt = event.detail.elt;
    if (elt && (elt.id === "board" || (elt.matches && elt.matches("section.column")))) watchColumns();
  });
})();
