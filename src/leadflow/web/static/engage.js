/* leadflow — the rep workspace's keyboard shortcuts and the cadence editor's step rows.
   Plain JavaScript, no build step; delegated listeners, so HTMX swaps need no re-binding. */
(function () {
  "use strict";

  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  // 1–9 and 0 press the disposition buttons, S opens "skip", N presses Next.
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat || typing(e.target)) return;
    var key = e.key.toLowerCase();
    var card = document.getElementById("task-card");
    if (card && /^[0-9]$/.test(key)) {
      var button = card.querySelector('button[name="disposition"][data-key="' + key + '"]');
      if (button && !button.disabled) { e.preventDefault(); button.click(); }
    } else if (card && key === "s") {
      var skip = document.getElementById("task-skip");
      if (skip) {
        e.preventDefault();
        skip.open = true;
        skip.querySelector("input[name=reason]").focus();
      }
    } else if (!card && key === "n") {
      var next = document.getElementById("next-button");
      if (next && !next.disabled) { e.preventDefault(); next.click(); }
    }
  });

  // "Call back" needs a time: show the field and ask for it before sending.
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest('button[name="disposition"]');
    if (!button) return;
    var field = document.getElementById("callback-field");
    var input = field && field.querySelector("input");
    if (!input) return;
    if (button.value === "call_back") {
      field.hidden = false;
      input.required = true;
      if (!input.value) { e.preventDefault(); input.focus(); }
    } else {
      input.required = false;
    }
  });

  // A refusal (422) replaces the card with the card and its message; any other error
  // shows the error page, as without HTMX.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var status = e.detail.xhr.status;
    if (status === 422) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    } else if (status >= 400) {
      var doc = new DOMParser().parseFromString(e.detail.xhr.responseText, "text/html");
      document.title = doc.title;
      document.body.replaceWith(doc.body);
    }
  });

  // After the queue moves on, the keyboard is ready for the next card.
  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.detail.target.id !== "workspace") return;
    var focus = document.getElementById("task-error") ? document.querySelector("#callback-field:not([hidden]) input, #task-skip[open] input[name=reason]") : null;
    if (focus) { focus.focus(); } else if (document.activeElement) { document.activeElement.blur(); }
  });

  // The cadence editor: add and remove step rows.
  document.addEventListener("click", function (e) {
    var add = e.target.closest && e.target.closest("#add-step");
    if (add) {
      var rows = document.getElementById("step-rows");
      var template = document.getElementById("step-template");
      var next = 0;
      rows.querySelectorAll("tr[data-index]").forEach(function (row) {
        next = Math.max(next, Number(row.dataset.index) + 1);
      });
      var html = template.innerHTML.replace(/__i__/g, String(next));
      rows.insertAdjacentHTML("beforeend", html);
      renumber(rows);
      var last = rows.lastElementChild;
      if (last) last.querySelector("input").focus();
      return;
    }
    var remove = e.target.closest && e.target.closest("[data-remove-step]");
    if (remove) {
      var body = remove.closest("tbody");
      if (body.querySelectorAll("tr").length > 1) {
        remove.closest("tr").remove();
        renumber(body);
      }
    }
  });

  function renumber(rows) {
    rows.querySelectorAll("tr .step-number").forEach(function (cell, i) {
      cell.textContent = String(i + 1);
    });
  }
})();
