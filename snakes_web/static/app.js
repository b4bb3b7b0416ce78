// snakes-web: the page, enhanced. Without this file the form posts and the server renders the result;
// with it, photos can be dropped anywhere, pasted, picked or taken with the camera, URLs pasted, an
// example clicked, and each photo gets its own card in place, as soon as its answer is back.
// No framework, no inline code (the page's CSP forbids it).
(function () {
  "use strict";

  var form = document.getElementById("classify");
  if (!form || !window.FormData || !window.XMLHttpRequest || !window.URL || !URL.createObjectURL) {
    return; // an old browser keeps the plain form
  }

  var API = form.getAttribute("data-api");
  var NEGATIVE = form.getAttribute("data-negative-label") || "";
  var SHOW_ABOVE = parseFloat(form.getAttribute("data-show-above")) || 0;
  var MAX_FILES = parseInt(form.getAttribute("data-max-files"), 10) || 8;
  var AT_LEAST = 3; // the page always lists the top 3 (results.answers_that_matter)
  var AT_ONCE = 2; // photos of one batch sent at the same time
  var MAX_SIDE = 1600; // longest side sent when a photo is downscaled; the model sees far less
  var fileInput = document.getElementById("file");
  var cameraInput = document.getElementById("camera");
  var urlInput = document.getElementById("url");
  var button = form.querySelector("button[type=submit]");
  var outcome = document.getElementById("outcome");
  var problem = document.getElementById("problem");
  var overlay = document.getElementById("drop-overlay");
  var examples = document.getElementById("examples");
  var explainBox = document.getElementById("explain");

  var chosen = []; // the Files to send; empty means "send the URL"
  var previewUrls = [];
  var inFlight = [];
  var latest = 0;

  document.documentElement.classList.add("js");
  Array.prototype.forEach.call(document.querySelectorAll(".js-only"), function (el) { el.hidden = false; });
  if (window.matchMedia && window.matchMedia("(pointer: coarse)").matches) {
    cameraInput.closest(".field").hidden = false; // phones and tablets: a button straight to the camera
  }

  // --- choosing photos or URLs ---------------------------------------------------------------

  fileInput.addEventListener("change", function () {
    if (fileInput.files && fileInput.files.length) { choose(Array.prototype.slice.call(fileInput.files)); }
  });
  cameraInput.addEventListener("change", function () {
    if (cameraInput.files && cameraInput.files[0]) { choose([cameraInput.files[0]]); }
  });
  urlInput.addEventListener("input", function () {
    if (urlInput.value.trim()) { forgetFiles(); }
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    classify();
  });

  function choose(files) {
    urlInput.value = "";
    chosen = files;
    classify();
  }

  function forgetFiles() {
    chosen = [];
    fileInput.value = "";
    cameraInput.value = "";
  }

  // Drop anywhere on the page. Counting enter/leave pairs keeps the overlay from flickering over children.
  var dragDepth = 0;
  function carriesFiles(event) {
    var types = event.dataTransfer && event.dataTransfer.types;
    return !!types && Array.prototype.indexOf.call(types, "Files") !== -1;
  }
  document.addEventListener("dragenter", function (event) {
    if (!carriesFiles(event)) { return; }
    event.preventDefault();
    dragDepth += 1;
    overlay.hidden = false;
  });
  document.addEventListener("dragover", function (event) {
    if (!carriesFiles(event)) { return; }
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("dragleave", function (event) {
    if (!carriesFiles(event)) { return; }
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) { overlay.hidden = true; }
  });
  document.addEventListener("drop", function (event) {
    dragDepth = 0;
    overlay.hidden = true;
    var data = event.dataTransfer;
    if (!data) { return; }
    var files = fileList(data.files);
    var links = addresses(data.getData && (data.getData("text/uri-list") || data.getData("text/plain")) || "");
    if (files.length) {
      event.preventDefault();
      choose(files);
    } else if (links.length && event.target !== urlInput) {
      event.preventDefault(); // an image dragged from another tab arrives as its address
      useUrls(links.slice(0, 1));
    }
  });

  // Paste photos (a screenshot, copied images) or addresses anywhere but in a text field.
  document.addEventListener("paste", function (event) {
    var data = event.clipboardData;
    if (!data) { return; }
    var files = fileList(data.files);
    if (!files.length && data.items) {
      for (var i = 0; i < data.items.length; i += 1) {
        if (data.items[i].kind === "file") { files.push(data.items[i].getAsFile()); }
      }
    }
    files = files.filter(function (file) { return file && /^image\//.test(file.type); });
    if (files.length) {
      event.preventDefault();
      choose(files);
      return;
    }
    var text = (data.getData("text/plain") || "").trim();
    var typing = event.target === urlInput || (event.target && event.target.isContentEditable);
    var links = addresses(text);
    if (!typing && links.length && links.join(" ") === text.split(/\s+/).join(" ")) {
      event.preventDefault(); // one address, or several (one per line): a card each
      useUrls(links);
    }
  });

  function fileList(files) {
    return files && files.length ? Array.prototype.slice.call(files) : [];
  }

  function addresses(text) {
    return text.trim().split(/\s+/).filter(function (word) { return /^https?:\/\/\S+$/i.test(word); });
  }

  function useUrls(urls) {
    urlInput.value = urls[0];
    forgetFiles();
    classify(urls);
  }

  // An example photo: fetched from our own static files, then sent like a photo the visitor picked.
  if (examples) {
    examples.addEventListener("click", function (event) {
      var target = event.target.closest && event.target.closest("button.example");
      if (!target || !window.fetch) { return; }
      event.preventDefault();
      var name = target.value;
      fetch(target.getAttribute("data-src")).then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.blob();
      }).then(function (blob) {
        choose([new File([blob], name, { type: blob.type || "image/jpeg" })]);
      }, function () {
        showProblem("We could not load that example photo. Please try again.", null);
      });
    });
  }

  // --- sending -------------------------------------------------------------------------------

  // Each photo (or address) of a batch gets its own card at once, then its answer as soon as it is back.
  function classify(urls) {
    var typed = urlInput.value.trim();
    var inputs = chosen.length ? chosen.map(function (file) { return { file: file }; })
      : (urls || (typed ? [typed] : [])).map(function (url) { return { url: url }; });
    if (!inputs.length) {
      showProblem("Choose a photo, drop one on the page, or paste the address of an image first.", null);
      fileInput.focus();
      return;
    }
    inFlight.forEach(function (xhr) { xhr.abort(); });
    inFlight = [];
    var ticket = ++latest; // a newer batch makes every older answer moot
    hideProblem();
    clearOutcome();
    var dropped = inputs.length - MAX_FILES;
    inputs = inputs.slice(0, MAX_FILES);
    var single = inputs.length === 1;
    var focused = false;
    var cards = inputs.map(function (input, index) { return showPending(input, index + 1, single); });
    var next = 0;
    var running = 0;
    button.disabled = true;
    if (dropped > 0) {
      showProblem("Only the first " + MAX_FILES + " photos are classified; send the other " + dropped +
        " afterwards.", null);
    }

    function finished() {
      running -= 1;
      if (ticket !== latest) { return; }
      if (next < inputs.length) { start(); } else if (running === 0) { button.disabled = false; }
    }
    function start() {
      var index = next;
      next += 1;
      running += 1;
      var input = inputs[index];
      var card = cards[index];
      ask(input, null, card, function () { return ticket === latest; }).then(function (answer) {
        if (ticket !== latest) { return; }
        if (answer.ok) {
          var heading = showResult(answer.body, card, input);
          if (!focused) { focused = true; heading.focus(); }
        } else if (single) {
          clearOutcome();
          showProblem(friendly(answer.status, answer.body), answer.requestId);
        } else {
          showCardProblem(card, friendly(answer.status, answer.body), answer.requestId);
        }
      }, function (reason) {
        if (reason === "aborted" || ticket !== latest) { return; }
        var words = "We could not reach the server. Check your connection and try again.";
        if (single) { clearOutcome(); showProblem(words, null); } else { showCardProblem(card, words, null); }
      }).then(finished);
    }
    for (var i = 0; i < Math.min(AT_ONCE, inputs.length); i += 1) { start(); }
  }

  // Send one photo or address; `explain` names the class to map (null: the top class). The first answer
  // asks for a feedback receipt ("Is this right?"); a second heatmap of the same photo does not.
  function ask(input, explain, card, still) {
    var wanted = explain || (explainBox && explainBox.checked ? "top" : "");
    var query = [];
    if (wanted) { query.push("explain=" + encodeURIComponent(wanted)); }
    if (!explain) { query.push("feedback=1"); }
    var address = API + (query.length ? "?" + query.join("&") : "");
    if (input.url) {
      return send(address, JSON.stringify({ url: input.url }), "application/json", card);
    }
    var file = input.sent ? Promise.resolve(input.sent) : shrink(input.file);
    return file.then(function (small) {
      if (still && !still()) { throw "aborted"; }
      input.sent = small; // a second heatmap for the same photo sends the same bytes
      var body = new FormData();
      body.append("file", small, small.name || "photo.jpg");
      return send(address, body, null, card);
    });
  }

  // XMLHttpRequest rather than fetch(): it reports upload progress, which a slow phone connection needs.
  function send(address, body, contentType, card) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      inFlight.push(xhr);
      function done() { inFlight = inFlight.filter(function (other) { return other !== xhr; }); }
      xhr.open("POST", address);
      xhr.setRequestHeader("Accept", "application/json");
      if (contentType) { xhr.setRequestHeader("Content-Type", contentType); }
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable && event.total > 0 && card.progress) {
          card.progress(event.loaded / event.total);
        }
      });
      xhr.upload.addEventListener("load", function () { if (card.progress) { card.progress(null); } });
      xhr.addEventListener("load", function () {
        done();
        var parsed = null;
        try { parsed = JSON.parse(xhr.responseText); } catch (ignored) { parsed = null; }
        resolve({ ok: xhr.status === 200 && !!parsed, status: xhr.status, body: parsed,
                  requestId: xhr.getResponseHeader("X-Request-ID") });
      });
      xhr.addEventListener("error", function () { done(); reject("network"); });
      xhr.addEventListener("abort", function () { done(); reject("aborted"); });
      xhr.send(body);
    });
  }

  // --- downscaling in the browser ------------------------------------------------------------

  // A 2×1 JPEG whose EXIF says "rotate 90°": decoded upright it is 1×2. If the browser's
  // createImageBitmap does not honour that, a redrawn photo could end up sideways: send the original.
  var ORIENTATION_PROBE =
    "/9j/4AAQSkZJRgABAQAAAQABAAD/4QAiRXhpZgAATU0AKgAAAAgAAQESAAMAAAABAAYAAAAAAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYW" +
    "GDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2Nj" +
    "Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAABAAIDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcI" +
    "CQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6" +
    "Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW" +
    "19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAEC" +
    "AxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0" +
    "dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oA" +
    "DAMBAAIRAxEAPwD0CiiigD//2Q==";
  var orientationHonoured = null;

  function honoursOrientation() {
    if (!orientationHonoured) {
      orientationHonoured = new Promise(function (resolve) {
        if (!window.createImageBitmap || !window.atob) { resolve(false); return; }
        var bytes = atob(ORIENTATION_PROBE);
        var array = new Uint8Array(bytes.length);
        for (var i = 0; i < bytes.length; i += 1) { array[i] = bytes.charCodeAt(i); }
        createImageBitmap(new Blob([array], { type: "image/jpeg" }), { imageOrientation: "from-image" })
          .then(function (bitmap) {
            var upright = bitmap.width === 1 && bitmap.height === 2;
            if (bitmap.close) { bitmap.close(); }
            resolve(upright);
          }, function () { resolve(false); });
      });
    }
    return orientationHonoured;
  }

  // Resolve to a smaller JPEG of the photo, upright, or to the original whenever in doubt.
  function shrink(file) {
    if (!/^image\//.test(file.type) || file.type === "image/gif" || file.type === "image/svg+xml") {
      return Promise.resolve(file);
    }
    return honoursOrientation().then(function (safe) {
      if (!safe) { return file; }
      return createImageBitmap(file, { imageOrientation: "from-image" }).then(function (bitmap) {
        var longest = Math.max(bitmap.width, bitmap.height);
        if (longest <= MAX_SIDE) {
          if (bitmap.close) { bitmap.close(); }
          return file;
        }
        var scale = MAX_SIDE / longest;
        var canvas = document.createElement("canvas");
        canvas.width = Math.max(1, Math.round(bitmap.width * scale));
        canvas.height = Math.max(1, Math.round(bitmap.height * scale));
        var context = canvas.getContext("2d");
        context.fillStyle = "#fff"; // transparency becomes white, as the server would make it
        context.fillRect(0, 0, canvas.width, canvas.height);
        context.imageSmoothingQuality = "high";
        context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
        if (bitmap.close) { bitmap.close(); }
        return new Promise(function (resolve) {
          canvas.toBlob(function (blob) {
            if (!blob || blob.size >= file.size) { resolve(file); return; }
            var name = (file.name || "photo").replace(/\.[^.]*$/, "") + ".jpg";
            resolve(new File([blob], name, { type: "image/jpeg" }));
          }, "image/jpeg", 0.9);
        });
      });
    }).catch(function () { return file; }); // a format the browser cannot draw (HEIC): the server decides
  }

  // --- showing ------------------------------------------------------------------------------

  function element(tag, className, text) {
    var el = document.createElement(tag);
    if (className) { el.className = className; }
    if (text !== undefined && text !== null) { el.textContent = text; }
    return el;
  }

  function clearOutcome() {
    previewUrls.forEach(function (url) { URL.revokeObjectURL(url); });
    previewUrls = [];
    outcome.textContent = "";
    outcome.removeAttribute("aria-busy");
  }

  function titleId(n) {
    return n === 1 ? "result-title" : "result-title-" + n; // as templates/_result.html names them
  }

  // A card appears at once for each photo, its preview and progress, until the answer replaces the progress.
  function showPending(input, n, single) {
    outcome.setAttribute("aria-busy", "true");
    var section = element("section", "result pending");
    section.setAttribute("aria-labelledby", titleId(n));
    var look = element("div", "look");
    var image = null;
    if (input.file) {
      var url = URL.createObjectURL(input.file);
      previewUrls.push(url);
      var figure = element("figure", "photo");
      image = element("img", "preview");
      image.src = url;
      image.alt = "The photo you chose";
      figure.appendChild(image);
      look.appendChild(figure);
      section.appendChild(look);
    }
    var side = element("div", "answer progress");
    var heading = element("h2", null, input.file ? "Looking at your photo…" : "Fetching the image…");
    heading.id = titleId(n);
    side.appendChild(heading);
    if (!single && input.file && input.file.name) { side.appendChild(element("p", "name", input.file.name)); }
    if (!input.file) { side.appendChild(element("p", "source", input.url)); }
    var bar = element("progress");
    bar.setAttribute("aria-label", "Progress");
    side.appendChild(bar);
    var words = element("p", "muted", input.file ? "Uploading…" : "Asking the server to download it…");
    side.appendChild(words);
    section.appendChild(side);
    outcome.appendChild(section);
    return {
      n: n,
      section: section,
      look: look,
      image: image,
      progress: function (fraction) {
        if (fraction === null) {
          bar.removeAttribute("value");
          words.textContent = "Classifying…";
        } else {
          bar.max = 1;
          bar.value = fraction;
          words.textContent = "Uploading… " + Math.round(fraction * 100) + "%";
        }
      }
    };
  }

  function percent(probability) {
    return (probability * 100).toFixed(1) + "%";
  }

  function capitalised(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function barsTable(caption, predictions, className) {
    var table = element("table", className);
    table.appendChild(element("caption", null, caption));
    predictions.forEach(function (prediction) {
      var row = element("tr");
      var label = element("th", null, prediction.label);
      label.scope = "row";
      var meterCell = element("td");
      var meter = element("meter", null, percent(prediction.probability));
      meter.min = 0;
      meter.max = 1;
      meter.value = prediction.probability;
      meterCell.appendChild(meter);
      row.appendChild(label);
      row.appendChild(meterCell);
      row.appendChild(element("td", "num", percent(prediction.probability)));
      table.appendChild(row);
    });
    return table;
  }

  // The answers that matter: those above SHOW_ABOVE, at least the top 3; the rest one click away.
  function answerTables(predictions) {
    var count = Math.max(AT_LEAST, predictions.filter(function (p) { return p.probability > SHOW_ABOVE; }).length);
    var shown = predictions.slice(0, count);
    var rest = predictions.slice(count);
    var parts = [barsTable("Most likely", shown, "bars top")];
    if (rest.length) {
      var details = element("details", "rest");
      details.appendChild(element("summary", null, "The other " + rest.length + " classes"));
      details.appendChild(barsTable("The other classes", rest, "bars"));
      parts.push(details);
    }
    return parts;
  }

  // Fill a card with its answer; return its heading (focused for the first answer of a batch).
  function showResult(body, card, input) {
    var predictions = body.predictions || [];
    var best = predictions[0];
    var section = card.section;
    section.textContent = "";
    section.className = "result";
    if (card.image) {
      card.image.alt = "The photo you sent";
      card.look.textContent = "";
      var figure = element("figure", "photo");
      figure.appendChild(card.image);
      card.look.appendChild(figure);
      if (body.heatmap) { addHeatmap(card, body.heatmap, predictions, input); }
      section.appendChild(card.look);
    }
    var answer = element("div", "answer");
    var about = body.about || {};
    var entry = about[best.label];
    var title = body.verdict === "could-be" ? "Probably not a snake" : best.label === NEGATIVE ? "Not a snake"
      : entry ? entry.name : capitalised(best.label);
    var heading = element("h2", null, title);
    heading.id = titleId(card.n);
    heading.tabIndex = -1;
    heading.appendChild(document.createTextNode(" "));
    heading.appendChild(element("span", "pct", percent(best.probability)));
    answer.appendChild(heading);
    if (input.file && input.file.name && outcome.children.length > 1) {
      answer.appendChild(element("p", "name", input.file.name));
    }
    if (!card.image && input.url) { answer.appendChild(element("p", "source", "Image: " + input.url)); }
    var sure = body.verdict === "sure";
    var note = element("p", "note " + (body.verdict || "sure") + (sure && best.label === NEGATIVE ? " negative" : ""),
      body.says || "");
    note.setAttribute("data-verdict", body.verdict || "");
    answer.appendChild(note);
    var subject = body.could_be ? body.could_be.label : best.label;
    if (about[subject]) { answer.appendChild(aboutBlock(subject, about[subject])); }
    answer.appendChild(element("p", "notice", "An answer from a photo can be wrong: do not rely on it for your safety."));
    answerTables(predictions).forEach(function (part) { answer.appendChild(part); });
    section.appendChild(answer);
    outcome.dispatchEvent(new CustomEvent("snakes:result", { detail: { body: body, answer: answer, input: input } })); // feedback.js
    if (!outcome.querySelector(".result.pending")) { outcome.removeAttribute("aria-busy"); }
    return heading;
  }

  function aboutBlock(label, entry) {
    var block = element("div", "about");
    block.setAttribute("data-label", label);
    if (entry.warning === "venomous") { block.appendChild(element("p", "badge venomous", "Venomous — keep your distance")); }
    if (entry.warning === "caution") { block.appendChild(element("p", "badge caution", "Can bite or injure — do not handle")); }
    var name = element("p", "about-name");
    name.appendChild(element("strong", null, entry.name));
    if (entry.scientific_name) {
      name.appendChild(document.createTextNode(" ("));
      name.appendChild(element("i", null, entry.scientific_name));
      name.appendChild(document.createTextNode(")"));
    }
    block.appendChild(name);
    if (entry.description) { block.appendChild(element("p", "about-text", entry.description)); }
    if (entry.link && /^https?:\/\//.test(entry.link)) {
      var more = element("p", "about-link");
      var link = element("a", null, "Read more about the " + label);
      link.href = entry.link;
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      more.appendChild(link);
      block.appendChild(more);
    }
    return block;
  }

  function showCardProblem(card, message, requestId) {
    var section = card.section;
    section.className = "result failed";
    section.textContent = "";
    var answer = element("div", "answer");
    var heading = element("h2", null, "Photo " + card.n + ": no answer");
    heading.id = titleId(card.n);
    heading.tabIndex = -1;
    answer.appendChild(heading);
    var words = element("p", "error", message);
    if (requestId) {
      var ref = element("span", "ref", "Reference: ");
      ref.appendChild(element("code", null, requestId));
      words.appendChild(ref);
    }
    answer.appendChild(words);
    section.appendChild(answer);
    if (!outcome.querySelector(".result.pending")) { outcome.removeAttribute("aria-busy"); }
  }

  // --- where the model looked: the heatmap over the preview, its toggle, scale and class picker ---

  function addHeatmap(card, heatmap, predictions, input) {
    var figure = card.look.querySelector(".photo");
    var heat = element("img", "heat");
    figure.appendChild(heat);
    var controls = element("div", "heat-controls");
    var toggle = element("input", "heat-toggle");
    toggle.type = "checkbox";
    toggle.id = "heat-" + card.n;
    var label = element("label", null, "Show where the model looked");
    label.htmlFor = toggle.id;
    controls.appendChild(toggle);
    controls.appendChild(label);
    card.look.appendChild(controls);
    var scale = element("p", "heat-scale");
    scale.setAttribute("aria-hidden", "true");
    scale.appendChild(element("span", null, "less"));
    scale.appendChild(element("span", "scale-bar"));
    scale.appendChild(element("span", null, "more"));
    card.look.appendChild(scale);
    var about = element("p", "heat-about");
    var pickLabel = element("label", null, "For ");
    var picker = element("select", "heat-classes");
    picker.id = "heat-class-" + card.n;
    pickLabel.htmlFor = picker.id;
    predictions.forEach(function (prediction) {
      var option = element("option", null, prediction.label);
      option.value = prediction.label;
      picker.appendChild(option);
    });
    var method = element("span", "heat-method");
    about.appendChild(pickLabel);
    about.appendChild(picker);
    about.appendChild(method);
    card.look.appendChild(about);
    drawHeatmap(heat, picker, method, heatmap);
    picker.addEventListener("change", function () {
      var wanted = picker.value;
      picker.disabled = true;
      ask(input, wanted, {}).then(function (answer) {
        if (answer.ok && answer.body.heatmap) { drawHeatmap(heat, picker, method, answer.body.heatmap); }
      }, function () { return null; }).then(function () { picker.disabled = false; });
    });
  }

  function drawHeatmap(heat, picker, method, heatmap) {
    heat.src = heatmap.png;
    heat.alt = "Heatmap of where the model looked for " + heatmap.label;
    picker.value = heatmap.label;
    method.textContent = heatmap.method === "cam" ? " (class activation map)."
      : " (occlusion: how much covering each part lowers it).";
  }

  // --- errors that read like help -------------------------------------------------------------

  var HELP = {
    "too-large": function (p) {
      return "That is too big for us. " + (p.detail || "") + " Try a smaller photo or a screenshot of it.";
    },
    "unsupported-media-type": function (p) {
      if (p.detected) { return p.detail; } // the server says what the file is ("That file is a PDF, …")
      if (/^The URL is not an image/.test(p.detail || "")) {
        return "That address is a page, not an image. Open the picture itself (right-click it, " +
          "“Copy image address”) and paste that instead.";
      }
      return "That file does not look like an image we can read. Try a JPEG, PNG, WebP or HEIC photo.";
    },
    "undecodable-image": function () {
      return "That image seems damaged or cut short, so we could not open it. Try saving it again, or pick another photo.";
    },
    "bad-request": function (p) {
      var detail = p.detail || "";
      if (/private|reserved/.test(detail)) { return "That address points into a private network, which we do not fetch from."; }
      if (/does not resolve/.test(detail)) { return "We could not find that website. Check the address for typos."; }
      if (/http:\/\/ and https:\/\//.test(detail)) { return "Only web addresses starting with http:// or https:// work here."; }
      if (/empty/.test(detail)) { return "That file is empty. Try another photo."; }
      return detail || "Something about that request was not right. Try another photo.";
    },
    "upstream-error": function (p) {
      return "We could not get the image from that address (" + (p.detail || "its server failed") +
        "). Check that the link opens the picture in your browser, or download it and upload the file.";
    },
    "upstream-timeout": function () {
      return "The website with that image took too long to answer. Try again, or download the picture and upload it.";
    },
    "model-unavailable": function () {
      return "The classifier is not available right now. Please try again in a minute.";
    },
    "overloaded": function () {
      return "Lots of people are asking right now. Please try again in a few seconds.";
    },
    "request-timeout": function () {
      return "Your photo took too long to arrive, so the server stopped waiting. " +
        "Try again where the signal is better, or send a smaller photo.";
    },
    "internal-error": function () {
      return "Something went wrong on our side. Please try again; if it keeps happening, send us the reference below.";
    }
  };

  function friendly(status, body) {
    if (!body || typeof body.type !== "string") {
      return "The server answered with an error (" + status + "). Please try again in a moment.";
    }
    var slug = body.type.split(":").pop();
    var help = HELP[slug];
    return help ? help(body) : (body.detail || "That did not work. Please try again.");
  }

  function showProblem(message, requestId) {
    problem.textContent = message;
    if (requestId) {
      var ref = element("span", "ref", "Reference: ");
      ref.appendChild(element("code", null, requestId));
      problem.appendChild(ref);
    }
    problem.hidden = false;
    problem.focus();
  }

  function hideProblem() {
    problem.hidden = true;
    problem.textContent = "";
  }
}());
