// The kanban board: SortableJS drags post to the move endpoint through htmx.
// The server answers with the fresh card and the changed column headers; on any
// failure the board is reloaded from the server so the rep always sees the truth.
(function () {
  "use strict";

  function board() {
    return document.getElementById("board");
  }

  function refreshBoard() {
    const el = board();
    if (!el) return;
    const query = el.dataset.filterQuery;
    htmx.ajax("GET", el.dataset.boardUrl + (query ? "?" + query : ""), {
      target: "#board",
      swap: "outerHTML",
    });
  }
  window.crmRefreshBoard = refreshBoard;

  function cardId(el) {
    return el && el.classList && el.classList.contains("card") ? el.dataset.id : "";
  }

  function neighbour(el, direction) {
    let sibling = direction < 0 ? el.previousElementSibling : el.nextElementSibling;
    while (sibling && !sibling.classList.contains("card")) {
      sibling = direction < 0 ? sibling.previousElementSibling : sibling.nextElementSibling;
    }
    return sibling;
  }

  // Posts a move of `card` to where it now sits in the DOM.
  function postMove(card, fromStageId) {
    const list = card.parentElement;
    // SortableJS leaves style="" behind; htmx would copy it and the CSP blocks inline styles.
    if (card.hasAttribute("style")) card.removeAttribute("style");
    card.classList.add("is-saving");
    return htmx.ajax("POST", "/opportunities/" + card.dataset.id + "/move/", {
      source: card,
      target: card,
      swap: "outerHTML",
      values: {
        stage: list.dataset.stageId,
        version: card.dataset.version,
        before: cardId(neighbour(card, -1)),
        after: cardId(neighbour(card, 1)),
        from_stage: fromStageId,
      },
    });
  }
  window.crmPostMove = postMove;

  // Cards sorted by value, date… keep no hand-made order: only the manual order lets a
  // card be dragged within its column (drops into another column still move it there).
  function manualOrder() {
    const el = board();
    return !el || !el.dataset.sort || el.dataset.sort === "manual";
  }
  window.crmManualOrder = manualOrder;

  function initSortable(list) {
    if (list.dataset.sortable === "1" || typeof Sortable === "undefined") return;
    list.dataset.sortable = "1";
    Sortable.create(list, {
      group: "board",
      sort: manualOrder(),
      animation: 150,
      draggable: ".card",
      filter: ".card-menu, .load-more, .card-editing, input, select, button",
      preventOnFilter: false,
      delayOnTouchOnly: true,
      delay: 200,
      ghostClass: "card-ghost",
      chosenClass: "card-chosen",
      dragClass: "card-drag",
      onStart: () => document.body.classList.add("is-dragging"),
      onEnd: (event) => {
        document.body.classList.remove("is-dragging");
        if (event.from === event.to && (event.oldIndex === event.newIndex || !manualOrder())) return;
        postMove(event.item, event.from.dataset.stageId);
      },
    });
  }

  function initAll(root) {
    const scope = root && root.querySelectorAll ? root : document;
    if (scope.matches && scope.matches("ol.cards")) initSortable(scope);
    scope.querySelectorAll("ol.cards").forEach(initSortable);
  }

  // SortableJS animates the cards around a drop with inline transforms and leaves
  // style="" behind on them. When a swap brings in an element with the same id (a 409
  // redraws whole columns), htmx copies the old element's attributes onto the new one
  // while it settles, and the strict CSP blocks the copied style. Drop them first.
  function clearInlineStyles() {
    const el = board();
    if (!el) return;
    el.querySelectorAll("[style]").forEach((node) => {
      if (node.hasAttribute("style")) node.removeAttribute("style");
    });
  }
  document.addEventListener("htmx:beforeSwap", clearInlineStyles);
  document.addEventListener("htmx:oobBeforeSwap", clearInlineStyles);

  document.addEventListener("DOMContentLoaded", () => initAll(document));
  document.addEventListener("htmx:load", (event) => initAll(event.detail.elt));

  // A drag's answer carries only the card's new version and exact value: the card stays
  // where it was dropped, with the version for the next drag, and its value moves between
  // the column headers (board_live.js).
  document.addEventListener("htmx:afterRequest", (event) => {
    const card = event.detail.elt;
    const xhr = event.detail.xhr;
    if (!card || !card.classList || !card.classList.contains("card") || !xhr) return;
    const version = xhr.getResponseHeader("X-Card-Version");
    if (!version || !event.detail.successful) return;
    card.classList.remove("is-saving");
    card.dataset.version = version;
    const stageId = card.parentElement && card.parentElement.dataset.stageId;
    if (stageId && card.dataset.stageId !== stageId) {
      const value = xhr.getResponseHeader("X-Card-Value");
      if (window.crmShiftCard && value) window.crmShiftCard(card, card.dataset.stageId, stageId, value);
      // A new stage: the time in stage starts again.
      card.dataset.stageId = stageId;
      card.classList.remove("is-rotting");
      const age = card.querySelector(".card-age");
      if (age) {
        age.classList.remove("rotting");
        age.removeAttribute("title");
        age.textContent = "0d in stage";
      }
    }
  });

  // A failed move (4xx other than the 409 the server already redrew, 5xx, network):
  // the DOM shows a position the server did not accept; reload the truth.
  function failed(event) {
    const path = (event.detail.requestConfig && event.detail.requestConfig.path) || "";
    if (/\/(move|status)\/$/.test(path)) refreshBoard();
  }
  document.addEventListener("htmx:responseError", failed);
  document.addEventListener("htmx:sendError", failed);

  // Cards carry no htmx attributes (a lighter board); their two requests start here.
  // A card's title opens the record in the side panel (a plain link without JavaScript).
  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest("#board a.card-title");
    if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) {
      return;
    }
    event.preventDefault();
    htmx.ajax("GET", link.getAttribute("href"), { source: link, target: "#record-panel", swap: "innerHTML" });
  });

  // A card's menu is fetched each time it opens (so its forms carry the card's current
  // version); until then it holds the link to the same actions as a page.
  document.addEventListener(
    "toggle",
    (event) => {
      const menu = event.target;
      if (!menu.matches || !menu.matches("details.card-menu") || !menu.open) return;
      const box = menu.querySelector(".menu");
      if (!menu.dataset.url) menu.dataset.url = box.getAttribute("href");
      const el = board();
      htmx.ajax("GET", menu.dataset.url, {
        source: menu,
        target: box,
        swap: "outerHTML",
        values: { filters: (el && el.dataset.filterQuery) || "" },
      });
    },
    true,
  );

  // A refused "Move to another pipeline…" (4xx, plain text): the message goes in the menu,
  // which stays open with the rep's choice.
  document.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    const xhr = event.detail.xhr;
    if (!form || !form.matches || !form.matches("form.move-pipeline") || !xhr || xhr.status < 400) return;
    const box = form.querySelector("[data-menu-error]");
    if (!box) return;
    box.textContent = window.crmErrorMessage ? window.crmErrorMessage(xhr) : xhr.responseText;
    box.hidden = false;
  });

  // Close an open card menu when clicking elsewhere.
  document.addEventListener("click", (event) => {
    document.querySelectorAll("details.card-menu[open]").forEach((menu) => {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
})();
