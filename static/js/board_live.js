// Live updates: other reps' moves, edits and new cards show up within seconds.
// The board carries the id of the last event it reflects (data-event-cursor). Every few
// seconds it asks for what changed after it (a conditional GET; 304 when nothing did,
// which costs the server two small queries). The answer holds only the changed cards,
// each saying which card it now follows, plus the headers of the columns they left or
// entered; they are put in place here, and the toolbar totals are added up again from
// every column's header (the server reads only the affected columns' totals). Too many
// changes (or new stages) come back as the whole board instead.
// Nothing is applied under the rep's hands: not while a card is dragged, carried with
// the keyboard or saving, nor while a menu, form or quick-add on the board is open; the
// cursor then stays put and the next poll asks again.
(function () {
  "use strict";

  const POLL_MS = 4000;

  let polling = false;
  let pointerDown = false;
  let stopped = false;

  function board() {
    return document.getElementById("board");
  }

  // True when changing #board now would destroy something the rep is doing.
  function busy() {
    const el = board();
    if (!el || pointerDown) return true;
    const body = document.body.classList;
    if (body.contains("is-dragging") || body.contains("is-kbd-moving")) return true;
    if (el.querySelector("details[open], .card-editing, .is-saving, .is-grabbed, .htmx-request")) {
      return true;
    }
    const active = document.activeElement;
    return !!(active && el.contains(active) && active.matches("input, select, textarea, button"));
  }

  // Column scroll positions survive a whole-board swap; focus does too (htmx, by id).
  function scrollState(el) {
    const state = { left: el.scrollLeft, lists: {} };
    el.querySelectorAll("ol.cards").forEach((list) => (state.lists[list.id] = list.scrollTop));
    return state;
  }

  function restoreScroll(state) {
    const el = board();
    if (!el) return;
    el.scrollLeft = state.left;
    Object.entries(state.lists).forEach(([id, top]) => {
      const list = document.getElementById(id);
      if (list) list.scrollTop = top;
    });
  }

  function swapBoard(el, html) {
    const state = scrollState(el);
    htmx.swap(el, html, { swapStyle: "outerHTML", swapDelay: 0, settleDelay: 20 });
    restoreScroll(state);
  }

  function cardNode(id) {
    return document.getElementById("opportunity-" + id);
  }

  // One changed card: removed, or put right after the card it now follows.
  function place(item) {
    const id = item.dataset.card;
    const old = cardNode(id);
    if (item.hasAttribute("data-remove")) {
      if (old) old.remove();
      return;
    }
    const fresh = item.content.querySelector(".card");
    const list = document.getElementById("cards-" + item.dataset.stage);
    let anchor = null; // the node the card goes before
    if (!list || !fresh) {
      if (old) old.remove();
      return;
    }
    if (item.dataset.after) {
      const above = cardNode(item.dataset.after);
      // Its place is beyond the loaded part of the column: "Load more" will bring it.
      if (!above || above.parentElement !== list || (above.nextElementSibling && above.nextElementSibling.matches(".load-more"))) {
        if (old) old.remove();
        return;
      }
      anchor = above.nextElementSibling;
    } else {
      anchor = list.firstElementChild;
    }
    // Already shown as the server has it (e.g. this rep's own drag): leave it alone.
    const inPlace = old && old.parentElement === list && (anchor === old || (old.previousElementSibling && old.previousElementSibling.id === "opportunity-" + item.dataset.after));
    if (inPlace && old.dataset.version === fresh.dataset.version) return;
    const focused = old && old === document.activeElement;
    if (old) {
      if (anchor === old) anchor = old.nextElementSibling;
      old.remove();
    }
    list.insertBefore(fresh, anchor);
    if (document.getElementById("board-kbd-help")) fresh.setAttribute("aria-describedby", "board-kbd-help");
    if (focused) fresh.focus({ preventScroll: true });
  }

  // Exact decimal sums of the headers' figures ("12.50", "300.750000000000"): BigInt
  // units of 10^-scale, as the server's Decimal adds them.
  function parseDecimal(text) {
    const match = /^(-?)(\d*)(?:\.(\d*))?$/.exec((text || "0").trim());
    if (!match) return { units: 0n, scale: 0 };
    const fraction = match[3] || "";
    const units = BigInt((match[2] || "0") + fraction);
    return { units: match[1] ? -units : units, scale: fraction.length };
  }

  function addDecimal(a, b) {
    const scale = Math.max(a.scale, b.scale);
    const widen = (d) => d.units * 10n ** BigInt(scale - d.scale);
    return { units: widen(a) + widen(b), scale };
  }

  // A non-negative `units` / 10^`scale` rounded half to even, as Python's Decimal rounds.
  function roundedHalfEven(units, scale) {
    const one = 10n ** BigInt(scale);
    let whole = units / one;
    const twice = (units % one) * 2n;
    if (twice > one || (twice === one && whole % 2n === 1n)) whole += 1n;
    return whole;
  }

  // As the `money` template filter: the currency, whole units rounded half to even
  // (Python's Decimal format), thousands separated by commas.
  function money(amount, currency) {
    const negative = amount.units < 0n;
    const whole = roundedHalfEven(negative ? -amount.units : amount.units, amount.scale);
    const digits = whole.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return currency + (negative ? "-" : "") + digits;
  }

  // The toolbar's count, value and weighted value: the sums of every column header's,
  // as the server computes them for the page (views.board's summary).
  function updateSummary() {
    const summary = document.getElementById("board-summary");
    const heads = document.querySelectorAll("#board .column-head[data-count]");
    if (!summary || !heads.length) return;
    let count = 0;
    let total = parseDecimal("0");
    let weighted = null;
    heads.forEach((head) => {
      count += Number(head.dataset.count) || 0;
      total = addDecimal(total, parseDecimal(head.dataset.total));
      if (head.dataset.weighted) {
        weighted = addDecimal(weighted || parseDecimal("0"), parseDecimal(head.dataset.weighted));
      }
    });
    const currency = summary.dataset.currency || "";
    const set = (name, text) => {
      const el = summary.querySelector('[data-sum="' + name + '"]');
      if (el && el.textContent !== text) el.textContent = text;
    };
    set("count", String(count));
    set("plural", count === 1 ? "" : "s");
    set("total", money(total, currency));
    const part = summary.querySelector('[data-sum="weighted"]');
    if (part) part.hidden = weighted === null;
    if (weighted !== null) set("weighted-total", money(weighted, currency));
  }

  function negated(amount) {
    return { units: -amount.units, scale: amount.scale };
  }

  function decimalText(amount) {
    const negative = amount.units < 0n;
    const digits = (negative ? -amount.units : amount.units).toString().padStart(amount.scale + 1, "0");
    const cut = digits.length - amount.scale;
    const text = amount.scale ? digits.slice(0, cut) + "." + digits.slice(cut) : digits;
    return (negative ? "-" : "") + text;
  }

  // A column's weighted value, as Column.weighted_total: the open value times the
  // stage's probability, to the cent, rounded half to even.
  function weightedOf(openTotal, probability) {
    const exact = openTotal.units * BigInt(probability);
    const cents = roundedHalfEven(exact < 0n ? -exact : exact, openTotal.scale);
    return { units: exact < 0n ? -cents : cents, scale: 2 };
  }

  // One header's figures and texts after a card of `value` left (-1) or entered (+1).
  function shiftHead(head, value, open, sign) {
    if (!head || head.dataset.count === undefined) return;
    const amount = sign < 0 ? negated(value) : value;
    // The open deals' figures are given only where they differ from the column's.
    const split = head.dataset.openCount !== undefined;
    let openCount = Number(split ? head.dataset.openCount : head.dataset.count) || 0;
    let openTotal = parseDecimal(split ? head.dataset.openTotal : head.dataset.total);
    const count = (Number(head.dataset.count) || 0) + sign;
    const total = addDecimal(parseDecimal(head.dataset.total), amount);
    if (open) {
      openCount += sign;
      openTotal = addDecimal(openTotal, amount);
    }
    const probability = head.dataset.probability;
    const weighted = probability !== "" && openCount > 0 ? weightedOf(openTotal, probability) : null;
    Object.assign(head.dataset, {
      count: String(count),
      total: decimalText(total),
      openCount: String(openCount),
      openTotal: decimalText(openTotal),
      weighted: weighted ? decimalText(weighted) : "",
    });
    const currency = (document.getElementById("board-summary") || head).dataset.currency || "";
    const stageId = head.id.replace("column-head-", "");
    const title = document.getElementById("column-title-" + stageId);
    const label = document.getElementById("column-label-" + stageId);
    const shown = head.querySelector(".count");
    const totalText = head.querySelector(".column-totals .total");
    if (shown) shown.textContent = String(count);
    if (label && title) {
      const noun = count === 1 ? "opportunity" : "opportunities";
      label.textContent = title.textContent + ", " + count + " " + noun + ", " + money(total, currency);
    }
    if (totalText) {
      totalText.textContent = money(total, currency);
      totalText.dataset.total = decimalText(total);
    }
    let part = head.querySelector(".column-totals .weighted");
    if (!weighted) {
      if (part) part.remove();
      return;
    }
    if (!part && totalText) {
      part = document.createElement("span");
      part.className = "weighted";
      part.title = "Open value times the stage's " + probability + "% probability";
      totalText.after(" ", part);
    }
    if (part) part.textContent = money(weighted, currency) + " weighted · " + probability + "%";
  }

  // A drag's answer carries no figures (reading both columns' totals was a third of a
  // drag's work on the server): the card's value moves from one header to the other
  // here, and the next poll brings the server's figures for both columns, this drag
  // being among the events it reads.
  window.crmShiftCard = (card, fromStageId, toStageId, exactValue) => {
    const value = parseDecimal(exactValue);
    const open = card.classList.contains("status-open");
    shiftHead(document.getElementById("column-head-" + fromStageId), value, open, -1);
    shiftHead(document.getElementById("column-head-" + toStageId), value, open, 1);
    updateSummary();
  };

  // A header swapped in by any answer (a drag's, a status change's) changes the totals.
  let summaryQueued = false;
  document.addEventListener("htmx:oobAfterSwap", (event) => {
    const target = event.detail && event.detail.target;
    if (summaryQueued || !target || !target.classList || !target.classList.contains("column-head")) return;
    summaryQueued = true;
    queueMicrotask(() => {
      summaryQueued = false;
      updateSummary();
    });
  });

  function applyChanges(html) {
    const box = document.createElement("template");
    box.innerHTML = html;
    box.content.querySelectorAll("template[data-card]").forEach(place);
    // Column headers replace theirs, by id; then the toolbar totals follow them.
    box.content.querySelectorAll("[hx-swap-oob]").forEach((fresh) => {
      fresh.removeAttribute("hx-swap-oob");
      const current = document.getElementById(fresh.id);
      if (current) current.replaceWith(fresh);
    });
    updateSummary();
  }

  function pollUrl(el) {
    const query = el.dataset.filterQuery;
    const stages = "stages=" + encodeURIComponent(el.dataset.stagesKey || "");
    return el.dataset.versionUrl + "?" + (query ? query + "&" : "") + stages;
  }

  function manualOrder(el) {
    return !el.dataset.sort || el.dataset.sort === "manual";
  }

  // The #board fragment with the board's filters and order, as the filters form gets it.
  async function fetchBoard(el) {
    const query = el.dataset.filterQuery;
    const response = await fetch(el.dataset.boardUrl + (query ? "?" + query : ""), {
      headers: { "HX-Request": "true", "HX-Target": "board" },
      cache: "no-store",
      credentials: "same-origin",
    });
    return response.ok ? response.text() : null;
  }

  async function poll() {
    const el = board();
    if (!el || stopped || polling || document.hidden || !el.dataset.versionUrl) return;
    polling = true;
    try {
      const cursor = el.dataset.eventCursor;
      // no-store: the browser must not answer from its cache nor add its own validators.
      const response = await fetch(pollUrl(el), {
        headers: { "If-None-Match": '"e' + cursor + '"', "HX-Request": "true" },
        cache: "no-store",
        credentials: "same-origin",
      });
      if (response.redirected || response.status === 404 || response.status === 403) {
        stopped = true; // signed out, or the pipeline is gone: the next click will tell
        return;
      }
      if (response.status === 304 || !response.ok) return;
      const next = response.headers.get("X-Event-Cursor");
      const html = response.status === 204 ? "" : await response.text();
      // The rep is in the middle of something (or changed the filters while we waited):
      // the cursor stays, so the next poll brings the same changes again.
      if (board() !== el || el.dataset.eventCursor !== cursor || busy()) return;
      if (response.headers.get("X-Board-Full")) {
        swapBoard(el, html); // carries its own cursor
        return;
      }
      if (html && !manualOrder(el) && /<template data-card="\d+" data-stage=/.test(html)) {
        // Changed cards come placed after their rank neighbour, which is their place only
        // in the manual order: a sorted board is fetched again (it carries its own cursor).
        const fresh = await fetchBoard(el);
        if (fresh && board() === el && el.dataset.eventCursor === cursor && !busy()) swapBoard(el, fresh);
        return;
      }
      if (html) applyChanges(html);
      if (next) el.dataset.eventCursor = next;
    } catch (error) {
      // Network hiccup: keep the current board and try at the next tick.
    } finally {
      polling = false;
    }
  }

  document.addEventListener("pointerdown", () => (pointerDown = true), true);
  document.addEventListener("pointerup", () => (pointerDown = false), true);
  document.addEventListener("pointercancel", () => (pointerDown = false), true);
  window.addEventListener("blur", () => (pointerDown = false));
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) poll();
  });
  document.addEventListener("DOMContentLoaded", () => {
    if (!board()) return;
    setInterval(poll, POLL_MS);
  });
})();
