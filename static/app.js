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

  // While a decision is on its way (htmx marks the form), keys are dropped: one keystroke, one decision.
  function inFlight() {
    return document.querySelector("#labeling .htmx-request") !== null;
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
    var button = buttonFor(openPanel() || document.body, name);
    if (!button) return;
    event.preventDefault();
    if (event.repeat || inFlight()) return;
    button.click();
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
