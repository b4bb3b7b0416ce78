// snakes-web: "Is this right?" without a page reload. Without this file the feedback form posts to
// /feedback (with the page's preview) and the server answers with a page; with it, the answer goes to
// the JSON API and the form says what was stored. It also adds the form to results app.js renders in
// place: those send back the very file (or URL) that was classified, which the receipt names by hash.
(function () {
  "use strict";

  var outcome = document.getElementById("outcome");
  if (!outcome || !window.fetch || !window.FormData) { return; }
  var template = document.getElementById("classify");
  var POST_PAGE = "/feedback";
  var API = "/api/v1/feedback";
  var built = 0; // ids stay unique when a page has several results

  Array.prototype.forEach.call(document.querySelectorAll("form.feedback"), enhance);

  // app.js announces each result it renders; the API's answer carries the receipt (asked with ?feedback=1).
  outcome.addEventListener("snakes:result", function (event) {
    var body = event.detail && event.detail.body;
    var input = event.detail && event.detail.input;
    if (!body || !body.feedback_receipt || !body.predictions || !body.predictions.length || !input) { return; }
    var labels = (template && template.getAttribute("data-labels") || "").split("\n").filter(Boolean);
    event.detail.answer.appendChild(build(body.feedback_receipt, body.predictions[0].label, labels, input));
  });

  function element(tag, attributes, text) {
    var el = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) { el.setAttribute(name, attributes[name]); });
    if (text) { el.textContent = text; }
    return el;
  }

  // The same markup as templates/_feedback.html; `input` is what was classified: {file} or {url}.
  function build(receipt, best, labels, input) {
    built += 1;
    var fid = "feedback-js-" + built;
    var form = element("form", { "class": "feedback", method: "post", action: POST_PAGE, "data-api": API });
    var set = element("fieldset");
    set.appendChild(element("legend", null, "Is this right?"));
    set.appendChild(element("input", { type: "hidden", name: "receipt", value: receipt }));
    // Enter in the words box presses the first submit button: "None of these", the box's own (off screen).
    set.appendChild(element("button", { type: "submit", name: "verdict", value: "none", "class": "implicit-submit",
      tabindex: "-1", "aria-hidden": "true" }, "None of these"));
    var yes = element("p", { "class": "feedback-row" });
    yes.appendChild(element("button", { type: "submit", name: "verdict", value: "confirm" }, "Yes, it is " + best));
    set.appendChild(yes);
    var no = element("p", { "class": "feedback-row" });
    no.appendChild(element("label", { "for": fid + "-label" }, "No, it is"));
    var select = element("select", { id: fid + "-label", name: "label" });
    labels.forEach(function (label) { if (label !== best) { select.appendChild(element("option", null, label)); } });
    no.appendChild(select);
    no.appendChild(element("button", { type: "submit", name: "verdict", value: "correct" }, "Send"));
    set.appendChild(no);
    var none = element("p", { "class": "feedback-row" });
    none.appendChild(element("label", { "for": fid + "-other" }, "None of these. It is (optional):"));
    none.appendChild(element("input", { id: fid + "-other", name: "other", maxlength: "100", autocomplete: "off",
      enterkeyhint: "send" }));
    none.appendChild(element("button", { type: "submit", name: "verdict", value: "none" }, "None of these"));
    set.appendChild(none);
    set.appendChild(element("p", { "class": "hint privacy" }, "Answering sends this photo again and stores it " +
      "(re-encoded, without its location or any other metadata) so the model can be retrained. Photos you do " +
      "not answer about are never stored."));
    var status = element("p", { "class": "feedback-status", role: "status" });
    status.hidden = true;
    set.appendChild(status);
    form.appendChild(set);
    enhance(form, input);
    return form;
  }

  // `input` (results app.js rendered): the photo goes back as the same file, or the same URL; a form the
  // server rendered carries its preview in the `image` field already.
  function enhance(form, input) {
    var clicked = null; // older browsers have no event.submitter
    form.addEventListener("click", function (event) {
      if (event.target && event.target.name === "verdict") { clicked = event.target; }
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = event.submitter || clicked;
      if (!button) { return; } // no verdict was chosen: never guess one
      var fields = new FormData(form);
      var answer = new FormData();
      answer.append("receipt", fields.get("receipt"));
      answer.append("verdict", button.value);
      if (button.value === "correct") { answer.append("label", fields.get("label")); }
      if (button.value === "none") { answer.append("other", fields.get("other") || ""); }
      if (fields.get("image")) {
        answer.append("image", fields.get("image"));
      } else if (input && input.url) {
        answer.append("url", input.url);
      } else if (input && (input.sent || input.file)) {
        var photo = input.sent || input.file;
        answer.append("file", photo, photo.name || "photo.jpg");
      }
      send(form, answer);
    });
  }

  function send(form, answer) {
    var status = form.querySelector(".feedback-status");
    var buttons = form.querySelectorAll("button");
    Array.prototype.forEach.call(buttons, function (b) { b.disabled = true; });
    fetch(form.getAttribute("data-api") || API, {
      method: "POST",
      headers: { "Accept": "application/json" },
      body: answer // multipart: the receipt, the verdict and the photo
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        return { ok: response.status === 201, body: body };
      });
    }).then(function (result) {
      if (result.ok) {
        var said = result.body.verdict === "confirm" ? "the model was right" :
          result.body.verdict === "correct" ? "it is " + result.body.label : "none of the model's labels";
        form.querySelector("fieldset").textContent = "";
        var thanks = element("p", { "class": "feedback-status done", role: "status", tabindex: "-1" },
          "Thank you. Stored: " + said + ".");
        form.querySelector("fieldset").appendChild(thanks);
        thanks.focus();
        return;
      }
      Array.prototype.forEach.call(buttons, function (b) { b.disabled = false; });
      status.textContent = (result.body && result.body.detail) || "That did not work. Please try again.";
      status.hidden = false;
    }, function () {
      Array.prototype.forEach.call(buttons, function (b) { b.disabled = false; });
      status.textContent = "We could not reach the server. Check your connection and try again.";
      status.hidden = false;
    });
  }
}());
