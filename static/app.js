// Keyboard for the labeling screen: a key clicks the button whose data-key names it (the button shows the
// key in <kbd>), so the mouse and the keyboard do the same thing. Keys do nothing while focus is in a text
// field (esc leaves it). An open panel (reason codes, alternatives, help) takes the keys until it closes.
(function () {
  "use strict";

  var NAMES = { " ": "space", "Backspace": "backspace", "Enter": "enter", "Escape": "escape" };

  function typing(element) {
    return element && element.closest && element.closest("input, textarea, select, [contenteditable]");
  }

  function openPanel() {
    return document.querySelector(".panel:not([hidden])");
  }

  function buttonFor(scope, name) {
    var buttons = scope.querySelectorAll("[data-key]");
    for (var i = 0; i < buttons.length; i++) {
      var keys = buttons[i].getAttribute("data-key").split(" ");
      if (keys.indexOf(name) >= 0 && !buttons[i].disabled && !buttons[i].closest("[hidden]")) {
        return buttons[i];
      }
    }
    return null;
  }

  // A key pressed while a decision is on its way is dropped: one keystroke, one decision, and never a decision
  // on an item the analyst has not seen yet. A key pressed once the next item is on screen but before htmx has
  // wired its buttons (the settle step, ~20 ms) is held and replayed then, so a fast analyst loses nothing.
  var waiting = null;  // the request of the decision on its way
  var settling = false;
  var held = null;

  function inWorkspace(element) {
    return !!(element && element.closest && element.closest("#labeling"));
  }

  function press(name) {
    var button = buttonFor(openPanel() || document.body, name);
    if (button) button.click();
  }

  function closePanels() {
    document.querySelectorAll(".panel").forEach(function (panel) { panel.hidden = true; });
    document.querySelectorAll("[data-role=decision]").forEach(function (input) { input.disabled = true; });
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    var name = NAMES[event.key] || (event.key.length === 1 ? event.key.toLowerCase() : null);
    var workspace = document.getElementById("labeling");
    if (!name || !workspace) return;
    if (settling) {
      event.preventDefault();
      if (!event.repeat && !waiting) held = name;
      return;
    }
    var button = buttonFor(openPanel() || document.body, name);
    if (!button) return;
    event.preventDefault();
    if (event.repeat || waiting) return;
    button.click();
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (inWorkspace(event.detail.elt)) waiting = event.detail.xhr;
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "labeling") settling = true;
  });
  // (htmx tells afterRequest on the page once the form that asked is gone: known by its request, not its form)
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.xhr === waiting) waiting = null;
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    if (!settling || event.target.id !== "labeling") return;
    settling = false;
    var name = held;
    held = null;
    if (name) press(name);
  });

  // No usable reply (a server error, the network): say so on the screen; the key can be pressed again.
  function failed(event, what) {
    if (event.detail.xhr !== waiting) return;
    waiting = null;
    var work = document.querySelector("#labeling .work");
    if (!work) return;
    var line = work.querySelector("[data-role=failure]") || document.createElement("p");
    line.className = "error";
    line.setAttribute("role", "alert");
    line.setAttribute("data-role", "failure");
    line.textContent = what + ": the last key was not recorded. Press it again, or reload the page.";
    work.insertBefore(line, work.firstChild);
  }
  document.addEventListener("htmx:responseError", function (event) {
    failed(event, "The server answered " + event.detail.xhr.status);
  });
  document.addEventListener("htmx:sendError", function (event) {
    failed(event, "The server could not be reached");
  });

  // Buttons that open a panel instead of posting: alternatives after a reject, reason codes after the positive
  // label, help. Capture phase, so that the form is not submitted before the panel had its say.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button");
    if (!button) return;
    if (button.hasAttribute("data-closes")) {
      closePanels();
      return;
    }
    var opens = button.getAttribute("data-opens");
    if (opens) {
      event.preventDefault();
      var panel = document.getElementById(opens);
      var wasOpen = panel && !panel.hidden;
      closePanels();
      if (panel) panel.hidden = wasOpen;
      return;
    }
    if (button.closest("#reasons")) return;  // posts the decision held for its reason
    if (button.hasAttribute("data-needs-reason")) {
      var form = button.form;
      var reasons = document.getElementById("reasons");
      if (!form || !reasons) return;
      event.preventDefault();
      closePanels();
      var decision = form.querySelector("[data-role=decision]");
      decision.value = button.value;
      decision.disabled = false;
      reasons.hidden = false;
      return;
    }
    closePanels();  // any other button drops a decision that was waiting for its reason
  }, true);

  // A stale form (409) or bad input (400) still carries the screen to show, with its message.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status === 400 || status === 409) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
