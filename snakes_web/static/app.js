// snakes-web: the page, enhanced. Without this file the form posts and the server renders the result;
// with it, a photo can be dropped anywhere, pasted, picked or taken with the camera, a URL pasted,
// and the answer appears in place. No framework, no inline code (the page's CSP forbids it).
(function () {
  "use strict";

  var form = document.getElementById("classify");
  if (!form || !window.FormData || !window.XMLHttpRequest || !window.URL || !URL.createObjectURL) {
    return; // an old browser keeps the plain form
  }

  var API = form.getAttribute("data-api");
  var THRESHOLD = parseFloat(form.getAttribute("data-confidence-threshold")) || 0;
  var NEGATIVE = form.getAttribute("data-negative-label") || "";
  var MAX_SIDE = 1600; // longest side sent when a photo is downscaled; the model sees far less
  var fileInput = document.getElementById("file");
  var cameraInput = document.getElementById("camera");
  var urlInput = document.getElementById("url");
  var button = form.querySelector("button[type=submit]");
  var outcome = document.getElementById("outcome");
  var problem = document.getElementById("problem");
  var overlay = document.getElementById("drop-overlay");

  var chosen = null; // the File to send; null means "send the URL"
  var previewUrl = null;
  var inFlight = null;
  var latest = 0;

  document.documentElement.classList.add("js");
  Array.prototype.forEach.call(document.querySelectorAll(".js-only"), function (el) { el.hidden = false; });
  if (window.matchMedia && window.matchMedia("(pointer: coarse)").matches) {
    cameraInput.closest(".field").hidden = false; // phones and tablets: a button straight to the camera
  }

  // --- choosing a photo or a URL -------------------------------------------------------------

  fileInput.addEventListener("change", function () {
    if (fileInput.files && fileInput.files[0]) { choose(fileInput.files[0]); }
  });
  cameraInput.addEventListener("change", function () {
    if (cameraInput.files && cameraInput.files[0]) { choose(cameraInput.files[0]); }
  });
  urlInput.addEventListener("input", function () {
    if (urlInput.value.trim()) { forgetFile(); }
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    classify();
  });

  function choose(file) {
    urlInput.value = "";
    chosen = file;
    classify();
  }

  function forgetFile() {
    chosen = null;
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
    var file = firstFile(data.files);
    var link = (data.getData && (data.getData("text/uri-list") || data.getData("text/plain")) || "").trim();
    if (file) {
      event.preventDefault();
      choose(file);
    } else if (/^https?:\/\//i.test(link) && event.target !== urlInput) {
      event.preventDefault(); // an image dragged from another tab arrives as its address
      useUrl(link.split(/\s+/)[0]);
    }
  });

  // Paste a photo (a screenshot, a copied image) or an address anywhere but in a text field.
  document.addEventListener("paste", function (event) {
    var data = event.clipboardData;
    if (!data) { return; }
    var file = firstFile(data.files);
    if (!file && data.items) {
      for (var i = 0; i < data.items.length && !file; i += 1) {
        if (data.items[i].kind === "file") { file = data.items[i].getAsFile(); }
      }
    }
    if (file && /^image\//.test(file.type)) {
      event.preventDefault();
      choose(file);
      return;
    }
    var text = (data.getData("text/plain") || "").trim();
    var typing = event.target === urlInput || (event.target && event.target.isContentEditable);
    if (!typing && /^https?:\/\/\S+$/i.test(text)) {
      event.preventDefault();
      useUrl(text);
    }
  });

  function firstFile(files) {
    return files && files.length ? files[0] : null;
  }

  function useUrl(url) {
    urlInput.value = url;
    forgetFile();
    classify();
  }

  // --- sending -------------------------------------------------------------------------------

  function classify() {
    var url = urlInput.value.trim();
    if (!chosen && !url) {
      showProblem("Choose a photo, drop one on the page, or paste the address of an image first.", null);
      fileInput.focus();
      return;
    }
    if (inFlight) { inFlight.abort(); }
    var ticket = ++latest; // a newer photo makes every older answer moot
    hideProblem();
    var pending = showPending(chosen, url);
    var request = chosen
      ? shrink(chosen).then(function (file) {
          if (ticket !== latest) { throw "aborted"; }
          return upload(file, pending);
        })
      : send(JSON.stringify({ url: url }), "application/json", pending);
    request.then(function (answer) {
      if (ticket !== latest) { return; }
      if (answer.ok) {
        showResult(answer.body, pending.image, url);
      } else {
        clearOutcome();
        showProblem(friendly(answer.status, answer.body), answer.requestId);
      }
    }, function (reason) {
      if (reason === "aborted" || ticket !== latest) { return; }
      clearOutcome();
      showProblem("We could not reach the server. Check your connection and try again.", null);
    }).then(function () {
      if (ticket === latest) { button.disabled = false; }
    });
  }

  function upload(file, pending) {
    var body = new FormData();
    body.append("file", file, file.name || "photo.jpg");
    return send(body, null, pending);
  }

  // XMLHttpRequest rather than fetch(): it reports upload progress, which a slow phone connection needs.
  function send(body, contentType, pending) {
    button.disabled = true;
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      inFlight = xhr;
      xhr.open("POST", API);
      xhr.setRequestHeader("Accept", "application/json");
      if (contentType) { xhr.setRequestHeader("Content-Type", contentType); }
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable && event.total > 0) {
          pending.progress(event.loaded / event.total);
        }
      });
      xhr.upload.addEventListener("load", function () { pending.progress(null); });
      xhr.addEventListener("load", function () {
        inFlight = null;
        var parsed = null;
        try { parsed = JSON.parse(xhr.responseText); } catch (ignored) { parsed = null; }
        resolve({ ok: xhr.status === 200 && !!parsed, status: xhr.status, body: parsed,
                  requestId: xhr.getResponseHeader("X-Request-ID") });
      });
      xhr.addEventListener("error", function () { inFlight = null; reject("network"); });
      xhr.addEventListener("abort", function () { reject("aborted"); });
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
    outcome.textContent = "";
    outcome.removeAttribute("aria-busy");
  }

  // The preview appears at once, with progress beside it, until the answer replaces the progress.
  function showPending(file, url) {
    if (previewUrl) { URL.revokeObjectURL(previewUrl); previewUrl = null; }
    clearOutcome();
    outcome.setAttribute("aria-busy", "true");
    var section = element("section", "result pending");
    section.setAttribute("aria-labelledby", "result-title");
    var image = null;
    if (file) {
      previewUrl = URL.createObjectURL(file);
      image = element("img", "preview");
      image.src = previewUrl;
      image.alt = "The photo you chose";
      section.appendChild(image);
    }
    var side = element("div", "answer progress");
    var heading = element("h2", null, file ? "Looking at your photo…" : "Fetching the image…");
    heading.id = "result-title";
    side.appendChild(heading);
    if (!file) { side.appendChild(element("p", "source", url)); }
    var bar = element("progress");
    bar.setAttribute("aria-label", "Progress");
    side.appendChild(bar);
    var words = element("p", "muted", file ? "Uploading…" : "Asking the server to download it…");
    side.appendChild(words);
    section.appendChild(side);
    outcome.appendChild(section);
    return {
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

  function showResult(body, image, url) {
    var predictions = body.predictions || [];
    var best = predictions[0];
    clearOutcome();
    var section = element("section", "result");
    section.setAttribute("aria-labelledby", "result-title");
    if (image) {
      image.alt = "The photo you sent";
      section.appendChild(image);
    }
    var answer = element("div", "answer");
    var heading = element("h2", null, best.label === NEGATIVE ? "Not a snake" : capitalised(best.label));
    heading.id = "result-title";
    heading.tabIndex = -1;
    heading.appendChild(document.createTextNode(" "));
    heading.appendChild(element("span", "pct", percent(best.probability)));
    answer.appendChild(heading);
    if (!image && url) { answer.appendChild(element("p", "source", "Image: " + url)); }
    var note;
    if (best.probability < THRESHOLD) {
      note = element("p", "note unsure", "The model is unsure about this one: no class reached " +
        Math.round(THRESHOLD * 100) + "%. Its best guess is " + best.label + ".");
    } else if (best.label === NEGATIVE) {
      note = element("p", "note negative", "This does not look like a snake.");
    } else {
      note = element("p", "note", "This looks most like a ");
      note.appendChild(element("strong", null, best.label));
      note.appendChild(document.createTextNode("."));
    }
    answer.appendChild(note);
    var table = element("table", "bars");
    table.appendChild(element("caption", null, "All classes"));
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
    answer.appendChild(table);
    section.appendChild(answer);
    outcome.appendChild(section);
    outcome.dispatchEvent(new CustomEvent("snakes:result", { detail: { body: body, answer: answer } })); // feedback.js
    heading.focus();
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
