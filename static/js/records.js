// The opportunity record: side panel on the board, inline form errors, quick-add reset.
(function () {
  "use strict";
  if (window.crmRecordsLoaded) return; // the board and the record page both load this file
  window.crmRecordsLoaded = true;

  function panel() {
    return document.getElementById("record-panel");
  }

  function closePanel() {
    const el = panel();
    if (!el || !el.firstElementChild) return;
    el.replaceChildren();
    document.body.classList.remove("has-record-panel");
  }

  // A 422 carries the form re-rendered with messages next to the fields: swap it in
  // (htmx's default is to drop 4xx bodies), and do not toast it as a failure.
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.xhr.status === 422) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  document.addEventListener("htmx:afterSwap", (event) => {
    const el = panel();
    if (el && event.detail.target === el) {
      document.body.classList.add("has-record-panel");
      const title = el.querySelector(".record-title");
      if (title) {
        title.setAttribute("tabindex", "-1");
        title.focus({ preventScroll: true });
      }
    }
  });

  // Quick-add: a successful add empties the form for the next one, focus stays in it.
  document.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    if (!form || !form.matches || !form.matches("form[data-quick-add]")) return;
    if (event.detail.successful) {
      form.reset();
      const first = form.querySelector("input[name=name]");
      if (first) first.focus();
    }
  });

  // A save on the record changed what the board shows (value, stage, status, next task).
  document.addEventListener("crm:opportunity-changed", () => {
    if (document.getElementById("board") && typeof window.crmRefreshBoard === "function") {
      window.crmRefreshBoard();
    }
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-close-panel]")) {
      event.preventDefault();
      closePanel();
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && panel() && panel().firstElementChild) {
      if (event.target.closest && event.target.closest("details[open]")) return;
      closePanel();
    }
    // Enter in the contact search looks contacts up instead of submitting the whole form.
    if (event.key === "Enter" && event.target.id === "contact-search") {
      event.preventDefault();
      htmx.trigger(event.target, "search");
    }
  });
})();
