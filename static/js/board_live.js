// Live updates: other reps' moves, edits and new cards show up within seconds.
// Every few seconds the board asks the server whether anything in this pipeline
// changed (a conditional GET; 304 when not, which costs the server one small query).
// When it did, the board fragment is fetched with the current filters and swapped in,
// but never under the rep's hands: not while a card is dragged, carried with the
// keyboard or saving, nor while a menu, form or quick-add on the board is open.
(function () {
  "use strict";

  const POLL_MS = 4000;
  const RETRY_MS = 700;

  let etag = null; // the version of the board on screen
  let newer = null; // a version the server reported that is not on screen yet
  let polling = false;
  let refreshing = false;
  let retry = null;
  let pointerDown = false;
  let stopped = false;

  function board() {
    return document.getElementById("board");
  }

  // True when swapping #board now would destroy something the rep is doing.
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

  // Column scroll positions survive the swap; focus does too (htmx restores it by id).
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

  function later() {
    clearTimeout(retry);
    retry = setTimeout(refresh, RETRY_MS);
  }

  async function refresh() {
    if (!newer || refreshing) return;
    if (busy()) return later();
    const el = board();
    const wanted = newer;
    const query = el.dataset.filterQuery;
    refreshing = true;
    try {
      const response = await fetch(el.dataset.boardUrl + (query ? "?" + query : ""), {
        headers: { "HX-Request": "true", "HX-Target": "board", "HX-Current-URL": location.href },
        cache: "no-store",
        credentials: "same-origin",
      });
      if (!response.ok || response.redirected) return;
      const html = await response.text();
      // The rep may have started something, or changed the filters, while we waited.
      if (board() !== el || busy()) return later();
      const state = scrollState(el);
      htmx.swap(el, html, { swapStyle: "outerHTML", swapDelay: 0, settleDelay: 20 });
      restoreScroll(state);
      etag = wanted;
      if (newer === wanted) newer = null;
    } catch (error) {
      // Offline for a moment: the next poll tries again.
    } finally {
      refreshing = false;
    }
  }

  async function poll() {
    const el = board();
    if (!el || stopped || polling || document.hidden || !el.dataset.versionUrl) return;
    polling = true;
    try {
      const headers = {};
      const known = newer || etag;
      if (known) headers["If-None-Match"] = known;
      // no-store: the browser must not answer from its cache nor add its own validators.
      const response = await fetch(el.dataset.versionUrl, {
        headers,
        cache: "no-store",
        credentials: "same-origin",
      });
      if (response.redirected || response.status === 404 || response.status === 403) {
        stopped = true; // signed out, or the pipeline is gone: the next click will tell
      } else if (response.ok) {
        const version = response.headers.get("ETag");
        // The first answer describes the board the page was rendered with (a change in
        // the few milliseconds between the two shows up with the next change).
        if (etag === null) etag = version;
        else if (version !== etag) newer = version;
      }
    } catch (error) {
      // Network hiccup: keep the current board and try at the next tick.
    } finally {
      polling = false;
    }
    if (newer) refresh();
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
    poll();
    setInterval(poll, POLL_MS);
  });
})();
