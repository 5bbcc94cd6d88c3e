// Journalist page: upload (or drop) an image, POST it to /v1/lookup, show the verdict as a card, with its signed
// receipt to download and a permalink (/?receipt=ID) that re-displays the card from the stored receipt.
// Every value from the server is written with textContent or as an attribute, never parsed as HTML.
"use strict";

(function () {
  const form = document.getElementById("lookup-form");
  const input = document.getElementById("file-input");
  const dropzone = document.getElementById("dropzone");
  const button = document.getElementById("check-button");
  const fileName = document.getElementById("file-name");
  const statusEl = document.getElementById("status");
  const result = document.getElementById("result");
  let chosen = null;
  let queryUrl = null;

  const VERDICTS = {
    match: {
      icon: "\u2713",
      heading: "Match: this image is in the ledger",
      summary: "It is a copy of a registered original (re-encoding, resizing or light cropping do not count as " +
        "changes). The publisher, registration time and timestamp below come from the signed record.",
    },
    altered: {
      icon: "!",
      heading: "Altered: this is a changed copy of a registered image",
      summary: "It shows the same scene as a registered original, but its content was changed. The highlighted " +
        "areas on the original show where.",
    },
    same_scene: {
      icon: "\u2194",
      heading: "Same scene: another photo, not a copy of a registered image",
      summary: "This is a different photo of the scene a registered image shows (taken from another viewpoint or " +
        "at another moment). It is not a copy of that image, and nothing says it was edited: the registered " +
        "image below is a lead to its publisher, not a verdict on this photo.",
    },
    no_match: {
      icon: "?",
      heading: "No match in the ledger",
      summary: "No registered image matches this one. That does not mean it is fake: only images that publishers " +
        "registered can be found.",
    },
    soft_binding_match: {
      icon: "\u2248",
      heading: "Similar fingerprint: a registered image is close to this one",
      summary: "A C2PA soft-binding query found a registered image whose fingerprint is close to this one's. " +
        "Fingerprints alone do not tell a re-share from an edit: check the image itself for a full verdict.",
    },
  };
  const RECEIPT_ID = /^[0-9a-f]{32}$/;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setStatus(message, isError) {
    statusEl.textContent = message;
    statusEl.classList.toggle("error", Boolean(isError));
    statusEl.setAttribute("role", isError ? "alert" : "status");
  }

  function choose(file) {
    chosen = file || null;
    fileName.textContent = chosen ? `Selected: ${chosen.name} (${formatBytes(chosen.size)})` : "";
    button.disabled = !chosen;
    setStatus("", false);
    if (chosen) check();
  }

  function formatBytes(n) {
    if (n < 1024) return `${n} bytes`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }

  function formatTime(value) {
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    if (Number.isNaN(date.getTime())) return String(value);
    return date.toLocaleString("en-GB", { dateStyle: "long", timeStyle: "medium", timeZone: "UTC" }) + " UTC";
  }

  function c2paText(summary) {
    if (!summary) return "Not read";
    switch (summary.status) {
      case "present": {
        const state = summary.validation_state || "present";
        const who = summary.signer || summary.signer_common_name;
        return `Present, ${state}` + (who ? `, signed by ${who}` : "") +
          (summary.failure_codes && summary.failure_codes.length ? ` (issues: ${summary.failure_codes.join(", ")})` : "");
      }
      case "absent":
        return "None in this file (re-shared images often lose them)";
      case "remote":
        return "Points to a manifest elsewhere" + (summary.remote_url ? ` (${summary.remote_url}, not fetched)` : "");
      case "error":
        return "Present but unreadable" + (summary.error ? `: ${summary.error}` : "");
      default:
        return String(summary.status);
    }
  }

  function fact(list, label, ...value) {
    list.append(el("dt", { text: label }), el("dd", {}, ...value));
  }

  function anchorFacts(list, proof) {
    const checkpoint = proof && proof.checkpoint;
    const anchor = checkpoint && checkpoint.anchor;
    if (!checkpoint) {
      fact(list, "On-chain timestamp", "Not yet: the record is waiting for the next checkpoint");
      return;
    }
    if (!anchor) {
      fact(list, "On-chain timestamp", `Checkpoint of ${checkpoint.tree_size} records signed; not yet anchored on chain`);
      return;
    }
    fact(list, "On-chain timestamp", formatTime(anchor.block_timestamp),
      el("span", { class: "note-plain", text: ` (block ${anchor.block}, chain ${anchor.chain_id})` }),
      anchor.ephemeral ? el("span", { class: "note", text: "Test chain inside this server: not a durable timestamp." })
        : null);
    fact(list, "Transaction", el("code", { text: anchor.tx }));
  }

  function renderMatch(card, data) {
    const record = data.record || {};
    const meta = record.metadata || {};
    const cid = data.record_cid;
    const title = meta.title || "Untitled";
    const body = el("div", { class: "card-body" });
    const images = el("div", { class: "images" });

    const stack = el("div", { class: "image-stack" },
      el("img", { class: "original", src: `/v1/records/${encodeURIComponent(cid)}/image?size=640`,
                  alt: `Registered original: ${title}`, width: record.image && record.image.width,
                  height: record.image && record.image.height }));
    const original = el("figure", {}, stack, el("figcaption", {
      text: data.verdict === "same_scene" ? "Registered photo of the same scene (a lead)" : "Registered original" }));
    if (data.verdict === "altered" && data.change_map_url) {
      const overlay = el("img", { class: "change-map", src: data.change_map_url,
                                  alt: "Change map: highlighted areas differ from the registered original" });
      stack.append(overlay);
      const toggleId = "toggle-changes";
      const toggle = el("input", { type: "checkbox", id: toggleId, checked: true });
      toggle.addEventListener("change", () => { overlay.hidden = !toggle.checked; });
      original.append(el("div", { class: "toggle" }, toggle, el("label", { for: toggleId, text: "Show changes" })));
      original.querySelector("figcaption").textContent = "Registered original, with the changes found highlighted";
    }
    images.append(original);
    if (queryUrl) {
      images.append(el("figure", {}, el("img", { class: "query-thumb", src: queryUrl, alt: "The image you checked" }),
        el("figcaption", { text: "Your image" })));
    }

    const facts = el("dl", { class: "facts" });
    const objectChanges = data.verdict === "altered" ? (data.object_changes || []) : [];
    if (objectChanges.length) {
      // What the detector saw in the changed areas, in words (coordinates are the original's pixels).
      fact(facts, "What changed", el("ul", { class: "object-changes" },
        ...objectChanges.map((c) => el("li", { text: c.description }))));
    }
    const publisher = record.publisher || {};
    fact(facts, "Publisher", publisher.id || "unknown");
    if (record.custody) {
      fact(facts, "Signing key", record.custody === "publisher"
        ? "Held by the publisher: the service never had it, so it could not have signed this record."
        : "Held by the service for the publisher (custodial).");
    }
    fact(facts, "Title", title);
    if (meta.author) fact(facts, "Author", meta.author);
    if (meta.capture_time) fact(facts, "Taken", meta.capture_time);
    if (meta.licence) fact(facts, "Licence", meta.licence);
    if (meta.source_url) {
      const safe = /^https?:\/\//i.test(meta.source_url);  // never a javascript: or data: link
      fact(facts, "Source", safe ? el("a", { href: meta.source_url, rel: "noopener noreferrer nofollow",
                                             text: meta.source_url }) : meta.source_url);
    }
    if (record.ingested_at) fact(facts, "Registered", formatTime(record.ingested_at));
    anchorFacts(facts, data.proof);
    if (data.c2pa !== undefined) fact(facts, "Content Credentials (your image)", c2paText(data.c2pa));
    if (data.record_error) fact(facts, "The record now", data.record_error);
    if (data.from_receipt && data.verdict === "altered") {
      fact(facts, "Changes", "The change map is not kept with the receipt: check the image again to see it.");
    }
    if (record.c2pa && record.c2pa.status === "present") {
      fact(facts, "Content Credentials (original)", c2paText(record.c2pa));
    }
    fact(facts, "Ledger record",
      el("a", { href: `/v1/records/${encodeURIComponent(cid)}`, text: "signed record" }), " · ",
      el("a", { href: `/v1/records/${encodeURIComponent(cid)}/proof`, text: "inclusion proof" }),
      el("br"), el("code", { text: cid }));
    body.append(images, facts);
    card.append(body);
  }

  function renderNoMatch(card, data) {
    const facts = el("dl", { class: "facts" });
    if (data.c2pa !== undefined) fact(facts, "Content Credentials (your image)", c2paText(data.c2pa));
    for (const w of data.withdrawn || []) {
      fact(facts, "Withdrawn", `These exact bytes were registered by ${w.publisher} and withdrawn on ` +
        `${formatTime(w.withdrawn_at)}${w.reason ? ` (${w.reason})` : ""}. The signed record stays in the ledger.`);
    }
    const body = el("div", { class: "card-body" });
    const images = el("div", { class: "images" });
    if (queryUrl) {
      images.append(el("figure", {}, el("img", { class: "query-thumb", src: queryUrl, alt: "The image you checked" }),
        el("figcaption", { text: "Your image" })));
    }
    body.append(images, facts);
    card.append(body);
  }

  function checkpointText(receipt) {
    const cp = receipt.checkpoint;
    return `checkpoint ${cp.size} of ${cp.origin}` + (cp.size === 1 ? " (1 entry)" : ` (${cp.size} entries)`);
  }

  // The signed receipt: what was answered, against which checkpoint, when; to download and to link to.
  function receiptSection(data) {
    const receipt = data.receipt;
    if (!receipt || !RECEIPT_ID.test(receipt.id || "")) return null;
    const url = `/v1/receipts/${receipt.id}`;
    const permalink = `/?receipt=${receipt.id}`;
    const facts = el("dl", { class: "facts" });
    if (receipt.verdict === "no_match") {
      fact(facts, "Statement", `Not registered as of ${checkpointText(receipt)}.`);
    } else {
      fact(facts, "Checked against", checkpointText(receipt));
    }
    fact(facts, "Checked on", formatTime(receipt.issued_at));
    fact(facts, "Signed by", el("code", { text: `${receipt.service.name}+${receipt.service.key_id}` }));
    fact(facts, "Image checked", el("code", { class: "query-sha256", text: `sha256 ${receipt.query.sha256}` }));
    fact(facts, "Receipt",
      el("a", { class: "receipt-download", href: url, download: `receipt-${receipt.id}.json`,
                text: "Download receipt" }), " \u00b7 ",
      el("a", { class: "receipt-permalink", href: permalink, text: "Permalink" }));
    return el("section", { class: "receipt", "aria-labelledby": "receipt-heading" },
      el("h3", { id: "receipt-heading", text: "Signed receipt" }),
      el("p", { class: "hint", text: "Anyone can check this answer offline, without this service: " +
        "provenance verify-receipt receipt.json --service-key KEY (KEY: what provenance log key prints)." }),
      facts);
  }

  function technicalDetails(data) {
    if (data.from_receipt) {
      return el("details", { class: "details" }, el("summary", { text: "The signed receipt" }),
        el("pre", { text: JSON.stringify(data.receipt, null, 2) }));
    }
    const shown = {
      verdict: data.verdict, record_cid: data.record_cid, hash: data.hash, model: data.model,
      thresholds: data.thresholds, candidates: data.candidates, object_changes: data.object_changes,
    };
    return el("details", { class: "details" }, el("summary", { text: "Technical details" }),
      el("pre", { text: JSON.stringify(shown, null, 2) }));
  }

  function render(data) {
    const known = Boolean(VERDICTS[data.verdict]);
    const kind = known ? data.verdict : (data.record_cid ? "match" : "no_match");
    const info = known ? VERDICTS[kind] : { icon: VERDICTS[kind].icon, heading: `Verdict: ${data.verdict}`,
                                             summary: VERDICTS[kind].summary };
    const card = el("article", { class: `card verdict-${kind}`, "data-verdict": data.verdict,
                                 "aria-labelledby": "verdict-heading" });
    card.append(
      el("h2", { class: "verdict-heading", id: "verdict-heading", tabindex: "-1" },
        el("span", { class: "verdict-icon", "aria-hidden": "true", text: info.icon }), info.heading));
    if (data.from_receipt) {
      card.append(el("p", { class: "receipt-banner", text:
        `Saved check from ${formatTime(data.receipt.issued_at)}, shown from its signed receipt ` +
        "(the image itself was not kept). The record details below are read from the ledger now." }));
    }
    card.append(el("p", { class: "verdict-summary", text: info.summary }));
    if (data.confident === false) {  // calibrated confidence below the shipped minimum (docs/verdicts.md)
      card.append(el("p", { class: "human-look", role: "note", text:
        "Needs a human look: the evidence for this verdict is weak (confidence " +
        `${Math.round(100 * data.confidence)} %). Compare the images yourself before relying on it.` }));
    }
    if (data.verdict === "match" && data.unseen_below) {  // compared small (Policy.match_floor, docs/verdicts.md)
      card.append(el("p", { class: "small-copy", role: "note", text:
        `Checked at a small size: an edit changing less than ${Math.round(100 * data.unseen_below)} % of the ` +
        "picture could go unseen at this size. Look for a larger copy before ruling out a small edit." }));
    }
    if (kind === "no_match" || !data.record_cid) renderNoMatch(card, data);
    else renderMatch(card, data);
    const receipt = receiptSection(data);
    if (receipt) card.append(receipt);
    card.append(technicalDetails(data));
    result.replaceChildren(card);
    result.hidden = false;
    card.querySelector("h2").focus();
  }

  async function errorMessage(response) {
    let message = `The service answered ${response.status}.`;
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) message = body.error.message;
    } catch (_) { /* not JSON */ }
    if (response.status === 429) {
      const retry = response.headers.get("Retry-After");
      message = `Too many checks from your address. Try again in ${retry || "a few"} seconds.`;
    }
    return message;
  }

  async function check() {
    if (!chosen) return;
    if (queryUrl) URL.revokeObjectURL(queryUrl);
    queryUrl = URL.createObjectURL(chosen);
    button.disabled = true;
    result.setAttribute("aria-busy", "true");
    setStatus("Checking the image against the ledger\u2026", false);
    const body = new FormData();
    body.append("file", chosen, chosen.name);
    try {
      const response = await fetch("/v1/lookup", { method: "POST", body });
      if (!response.ok) {
        setStatus(await errorMessage(response), true);
        result.hidden = true;
        return;
      }
      const data = await response.json();
      setStatus("Done.", false);
      render(data);
    } catch (err) {
      setStatus(`The check failed: ${err.message}. Is the service running?`, true);
    } finally {
      button.disabled = !chosen;
      result.removeAttribute("aria-busy");
    }
  }

  async function fetchJson(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(await errorMessage(response));
    return response.json();
  }

  // A permalink: re-display the verdict card from the stored, signed receipt (and the record it names).
  async function showReceipt(id) {
    if (!RECEIPT_ID.test(id)) {
      setStatus("This receipt link is not valid: a receipt id is 32 hexadecimal characters.", true);
      return;
    }
    queryUrl = null;
    result.setAttribute("aria-busy", "true");
    setStatus("Loading the saved check\u2026", false);
    try {
      const receipt = await fetchJson(`/v1/receipts/${id}`);
      const data = { verdict: receipt.verdict, record_cid: receipt.record_cid, receipt, from_receipt: true };
      if (receipt.record_cid) {
        // The record as the ledger holds it now (its one view for pages: /manifests/{id}); a record withdrawn since
        // the check still leaves the receipt readable.
        const cid = encodeURIComponent(receipt.record_cid);
        const [manifest, proof] = await Promise.allSettled([fetchJson(`/manifests/${cid}`),
                                                            fetchJson(`/v1/records/${cid}/proof`)]);
        data.record = manifest.status === "fulfilled" ? manifest.value.record : null;
        data.proof = proof.status === "fulfilled" ? proof.value : null;
        if (manifest.status === "rejected") data.record_error = manifest.reason.message;
      }
      setStatus("Saved check loaded.", false);
      render(data);
    } catch (err) {
      setStatus(err.message, true);
      result.hidden = true;
    } finally {
      result.removeAttribute("aria-busy");
    }
  }

  input.addEventListener("change", () => choose(input.files && input.files[0]));
  form.addEventListener("submit", (event) => { event.preventDefault(); check(); });
  for (const type of ["dragenter", "dragover"]) {
    dropzone.addEventListener(type, (event) => { event.preventDefault(); dropzone.classList.add("dragover"); });
  }
  for (const type of ["dragleave", "drop"]) {
    dropzone.addEventListener(type, () => dropzone.classList.remove("dragover"));
  }
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer && event.dataTransfer.files && event.dataTransfer.files[0];
    if (file) choose(file);
  });
  const permalink = new URLSearchParams(window.location.search).get("receipt");
  if (permalink !== null) showReceipt(permalink);
})();
