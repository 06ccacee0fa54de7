// Site-wide behaviour: toasts for server messages and for every failed htmx request.
(function () {
  "use strict";

  const GENERIC = {
    0: "Cannot reach the server. Check your connection; nothing was changed.",
    403: "You are not allowed to do that.",
    404: "That item does not exist or is not visible to you.",
    409: "This was changed by someone else.",
    500: "Something went wrong on our side; nothing was changed. Please try again.",
  };

  function toast(message, level) {
    const box = document.getElementById("toasts");
    if (!box || !message) return;
    const item = document.createElement("div");
    item.className = "toast toast-" + (level || "info");
    item.setAttribute("role", level === "error" ? "alert" : "status");
    item.textContent = message;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", () => item.remove());
    item.appendChild(close);
    box.appendChild(item);
    setTimeout(() => item.remove(), level === "error" ? 9000 : 4000);
  }
  window.crmToast = toast;

  function messageFrom(xhr) {
    const type = (xhr && xhr.getResponseHeader("Content-Type")) || "";
    if (xhr && type.startsWith("text/plain") && xhr.responseText) {
      return xhr.responseText.slice(0, 300);
    }
    const status = xhr ? xhr.status : 0;
    return GENERIC[status] || (status >= 500 ? GENERIC[500] : "The request failed (" + status + ").");
  }
  window.crmErrorMessage = messageFrom;

  document.addEventListener("toast", (event) => toast(event.detail.message, event.detail.level));
  document.addEventListener("htmx:responseError", (event) => {
    toast(messageFrom(event.detail.xhr), "error");
  });
  document.addEventListener("htmx:sendError", () => toast(GENERIC[0], "error"));

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-autoclose]").forEach((el) => setTimeout(() => el.remove(), 5000));
  });
})();
