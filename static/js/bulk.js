// Manager list bulk actions: show only the inputs the chosen action needs, tick a whole
// page at once, and tick "all matching" off again when a single row is picked.
(function () {
  "use strict";

  function showInputs(form) {
    var action = form.querySelector("#bulk-action");
    if (!action) return;
    form.querySelectorAll("[data-bulk-for]").forEach(function (wrap) {
      var wanted = wrap.getAttribute("data-bulk-for").split(" ").indexOf(action.value) !== -1;
      wrap.hidden = !wanted;
    });
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.id === "bulk-action") showInputs(target.form);
    if (target.classList && target.classList.contains("bulk-page")) {
      document.querySelectorAll(".bulk-row").forEach(function (box) { box.checked = target.checked; });
    }
    if (target.classList && (target.classList.contains("bulk-row") || target.classList.contains("bulk-page"))) {
      var ticked = document.querySelector('input[name="scope"][value="selected"]');
      if (ticked && target.checked) ticked.checked = true;
    }
  });

  function init() {
    var form = document.getElementById("bulk-form");
    if (form) showInputs(form);
  }
  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:afterSettle", init);
})();
