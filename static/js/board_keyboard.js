// Keyboard moves on the board, for people who cannot or do not drag.
// With a card focused: arrow keys move focus between cards (up/down) and columns
// (left/right). Space or Enter picks the card up; arrow keys then carry it through the
// columns; Space or Enter drops it, which posts the move exactly like a drag
// (window.crmPostMove in board.js); Escape puts it back. #board-announcer, a live
// region, tells screen-reader users what happened.
(function () {
  "use strict";

  // The card being carried: where it came from, so Escape can put it back.
  let held = null;
  // True while this script moves the held card in the DOM (which blurs it).
  let relocating = false;

  function announce(text) {
    const region = document.getElementById("board-announcer");
    if (region) region.textContent = text;
  }

  function lists() {
    return Array.from(document.querySelectorAll("#board ol.cards"));
  }

  function cardsIn(list) {
    return Array.from(list.children).filter((el) => el.classList.contains("card"));
  }

  function nameOf(card) {
    const title = card.querySelector(".card-title");
    return (title && title.textContent.trim()) || card.getAttribute("aria-label") || "Card";
  }

  function stageName(list) {
    const title = document.getElementById("column-title-" + list.dataset.stageId);
    return title ? title.textContent.trim() : "this stage";
  }

  // Cards in the column: the server's count when only part of the column is loaded.
  function columnSize(list, card) {
    const shown = cardsIn(list).length;
    const head = document.querySelector("#column-head-" + list.dataset.stageId + " .count");
    let counted = head ? parseInt(head.textContent, 10) || 0 : 0;
    if (held && held.card === card && held.fromStageId !== list.dataset.stageId) counted += 1;
    return Math.max(shown, counted);
  }

  function place(card) {
    const list = card.parentElement;
    const position = cardsIn(list).indexOf(card) + 1;
    return { list, position, of: columnSize(list, card) };
  }

  function describePlace(card) {
    const where = place(card);
    return stageName(where.list) + ", position " + where.position + " of " + where.of;
  }

  function canMove(card) {
    // The help text is only on the page for users who may move cards (board.html).
    return !!document.getElementById("board-kbd-help") && card.classList.contains("card");
  }

  // The cards point to the help text from here, not from the HTML (a lighter board).
  function describeCards(root) {
    if (!document.getElementById("board-kbd-help")) return;
    const scope = root && root.querySelectorAll ? root : document;
    if (scope.matches && scope.matches(".card")) scope.setAttribute("aria-describedby", "board-kbd-help");
    scope.querySelectorAll(".card:not([aria-describedby])").forEach((card) => {
      card.setAttribute("aria-describedby", "board-kbd-help");
    });
  }
  document.addEventListener("DOMContentLoaded", () => describeCards(document));
  document.addEventListener("htmx:load", (event) => describeCards(event.detail.elt));

  function focusCard(card) {
    if (!card) return;
    card.focus();
    card.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  // ----- Moving focus -------------------------------------------------------------

  function neighbourColumn(list, step) {
    const all = lists();
    for (let i = all.indexOf(list) + step; i >= 0 && i < all.length; i += step) {
      if (cardsIn(all[i]).length) return all[i];
    }
    return null;
  }

  function moveFocus(card, key) {
    const list = card.parentElement;
    const cards = cardsIn(list);
    const index = cards.indexOf(card);
    if (key === "ArrowUp") return focusCard(cards[index - 1]);
    if (key === "ArrowDown") return focusCard(cards[index + 1]);
    if (key === "Home") return focusCard(cards[0]);
    if (key === "End") return focusCard(cards[cards.length - 1]);
    const other = neighbourColumn(list, key === "ArrowLeft" ? -1 : 1);
    if (other) {
      const targets = cardsIn(other);
      focusCard(targets[Math.min(index, targets.length - 1)]);
    }
  }

  // ----- Carrying a card ----------------------------------------------------------

  function pickUp(card) {
    held = {
      card,
      fromList: card.parentElement,
      fromNext: card.nextElementSibling,
      fromIndex: cardsIn(card.parentElement).indexOf(card),
      fromStageId: card.parentElement.dataset.stageId,
    };
    card.classList.add("is-grabbed");
    card.setAttribute("aria-grabbed", "true");
    document.body.classList.add("is-kbd-moving");
    announce(
      "Picked up " + nameOf(card) + ", " + describePlace(card) +
        ". Arrow keys move it, Space drops it, Escape cancels."
    );
  }

  function release() {
    if (!held) return null;
    const was = held;
    held = null;
    was.card.classList.remove("is-grabbed");
    was.card.removeAttribute("aria-grabbed");
    document.body.classList.remove("is-kbd-moving");
    return was;
  }

  // Insert the held card into `list` as its `index`-th card (before "Load more").
  function relocate(card, list, index) {
    const cards = cardsIn(list).filter((el) => el !== card);
    const before = cards[index] || list.querySelector(":scope > .load-more");
    relocating = true;
    list.insertBefore(card, before || null);
    relocating = false;
    focusCard(card);
  }

  function carry(card, key) {
    const list = card.parentElement;
    const cards = cardsIn(list);
    const index = cards.indexOf(card);
    const within = ["ArrowUp", "ArrowDown", "Home", "End"].includes(key);
    if (within && window.crmManualOrder && !window.crmManualOrder()) {
      announce("The cards are sorted. Switch to Manual order to move cards within a column.");
      return;
    }
    if (key === "ArrowUp" || key === "ArrowDown") {
      const target = key === "ArrowUp" ? index - 1 : index + 1;
      if (target < 0 || target >= cards.length) {
        announce(nameOf(card) + " is already at the " + (target < 0 ? "top" : "bottom") +
          " of " + stageName(list) + ".");
        return;
      }
      relocate(card, list, target);
    } else if (key === "Home" || key === "End") {
      relocate(card, list, key === "Home" ? 0 : cards.length - 1);
    } else {
      const all = lists();
      const other = all[all.indexOf(list) + (key === "ArrowLeft" ? -1 : 1)];
      if (!other) {
        announce(stageName(list) + " is the " + (key === "ArrowLeft" ? "first" : "last") + " stage.");
        return;
      }
      relocate(card, other, Math.min(index, cardsIn(other).length));
    }
    announce(nameOf(card) + ", " + describePlace(card) + ".");
  }

  function cancel() {
    const was = release();
    if (!was) return;
    const card = was.card;
    if (card.isConnected) {
      relocating = true;
      const next = was.fromNext && was.fromNext.parentElement === was.fromList ? was.fromNext : null;
      was.fromList.insertBefore(card, next);
      relocating = false;
    }
    announce("Move cancelled. " + nameOf(card) + " is back in " + stageName(was.fromList) + ".");
  }

  function drop() {
    const was = release();
    const card = was.card;
    const list = card.parentElement;
    const sameColumn = list === was.fromList;
    if (sameColumn && window.crmManualOrder && !window.crmManualOrder()) {
      // Back in its sorted column: its place there is the sort's, not where it was carried.
      relocating = true;
      const next = was.fromNext && was.fromNext.parentElement === list ? was.fromNext : null;
      list.insertBefore(card, next);
      relocating = false;
      focusCard(card);
      announce(nameOf(card) + " dropped where it was.");
      return;
    }
    if (sameColumn && cardsIn(list).indexOf(card) === was.fromIndex) {
      announce(nameOf(card) + " dropped where it was.");
      return;
    }
    const id = card.dataset.id;
    const version = card.dataset.version;
    const stageId = list.dataset.stageId;
    const name = nameOf(card);
    announce("Moving " + name + "…");
    Promise.resolve(window.crmPostMove(card, was.fromStageId)).then(() => {
      // The server swapped in a fresh card (new version) and the new column totals.
      const fresh = document.getElementById("opportunity-" + id);
      if (!fresh) return;
      focusCard(fresh);
      const moved = fresh.dataset.version !== version && fresh.parentElement.dataset.stageId === stageId;
      if (moved) {
        const where = place(fresh);
        announce(name + " moved to " + stageName(where.list) + ", position " + where.position +
          " of " + where.of + ".");
      } else {
        announce(name + " was not moved.");
      }
    });
  }

  // ----- Wiring ----------------------------------------------------------------------

  const KEYS = ["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Home", "End"];

  document.addEventListener("keydown", (event) => {
    const card = event.target;
    if (!card.classList || !card.classList.contains("card") || !card.closest("#board")) return;
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const key = event.key;
    if (held && held.card === card) {
      if (KEYS.includes(key)) carry(card, key);
      else if (key === " " || key === "Enter") drop();
      else if (key === "Escape") {
        cancel();
        focusCard(card);
      } else return;
      event.preventDefault();
      return;
    }
    if (KEYS.includes(key)) {
      moveFocus(card, key);
      event.preventDefault();
    } else if ((key === " " || key === "Enter") && canMove(card) && !card.classList.contains("is-saving")) {
      pickUp(card);
      event.preventDefault();
    }
  });

  // Tabbing or clicking away while carrying a card puts it back.
  document.addEventListener("focusout", (event) => {
    if (held && event.target === held.card && !relocating) cancel();
  });
})();
