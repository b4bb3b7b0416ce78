// The fetch() example of README.md and docs/guide.md as a working page: everything here is the frontend's own code.
// It talks to the snakes-web API on another origin; the server's CORS headers make that legal.
"use strict";

const form = document.querySelector("#ask");
const apiInput = document.querySelector("#api");
const answer = document.querySelector("#answer");
const modelLine = document.querySelector("#model");

const fromQuery = new URLSearchParams(location.search).get("api");
if (fromQuery) apiInput.value = fromQuery;

const api = (path) => apiInput.value.replace(/\/+$/, "") + path;

// A simple cross-origin GET: no preflight.
async function showModel() {
  try {
    const response = await fetch(api("/api/v1/model"));
    const model = await response.json();
    modelLine.textContent = `Model: ${model.name} (${model.labels} labels: ${model.vocab.join(", ")})`;
  } catch (error) {
    modelLine.textContent = `Cannot reach ${api("/api/v1/model")} from this page (${error.message}).`;
  }
}

// A file goes as multipart/form-data; a URL goes as JSON, which makes the browser send a CORS preflight.
async function classify(file, url) {
  let request;
  if (file) {
    const form = new FormData();
    form.append("file", file);
    request = { method: "POST", body: form };
  } else {
    request = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ url }) };
  }
  const response = await fetch(api("/api/v1/predict?top=5"), request);
  const body = await response.json();
  // X-Request-ID is readable here only because the API lists it in Access-Control-Expose-Headers.
  return { ok: response.ok, body, requestId: response.headers.get("X-Request-ID") };
}

function show(result) {
  answer.textContent = "";
  if (!result.ok) {
    const problem = document.createElement("p");
    problem.className = "problem";
    problem.textContent = `${result.body.title}: ${result.body.detail} (request ${result.requestId})`;
    answer.append(problem);
    return;
  }
  const list = document.createElement("ol");
  for (const { label, probability } of result.body.predictions) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = label;
    const meter = Object.assign(document.createElement("meter"), { min: 0, max: 1, value: probability });
    const percent = document.createElement("span");
    percent.textContent = `${(probability * 100).toFixed(1)}%`;
    item.append(name, meter, percent);
    list.append(item);
  }
  const id = document.createElement("p");
  id.className = "muted";
  id.textContent = `request ${result.requestId}`;
  answer.append(list, id);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = document.querySelector("#photo").files[0];
  const url = document.querySelector("#link").value.trim();
  answer.textContent = "Asking…";
  try {
    show(await classify(file, url));
  } catch (error) {
    // A CORS refusal looks like a network error to the page: the browser hides the answer.
    answer.textContent = "";
    const problem = document.createElement("p");
    problem.className = "problem";
    problem.textContent = `The browser blocked the request or could not reach the API (${error.message}).`;
    answer.append(problem);
  }
});

apiInput.addEventListener("change", showModel);
showModel();
