/* 公平 Gongping — the QR page's complaint form: an anonymous device credential, geolocation with consent,
   camera photos and an idempotency key that survives retries. No framework; served from /static (CSP 'self'). */
(function () {
  "use strict";
  var form = document.getElementById("complaint-form");
  if (!form) { return; }
  var msgs = JSON.parse(form.dataset.msgs || "{}");
  var statuses = JSON.parse(form.dataset.statuses || "{}");
  var qrToken = form.dataset.token || "";
  var locale = form.dataset.locale || "zh-CN";
  var note = form.dataset.note || "";
  var result = document.getElementById("result");
  var submit = document.getElementById("submit");
  var locStatus = document.getElementById("location-status");
  var MAX_PHOTOS = 6;
  var MAX_PHOTO_BYTES = 25 * 1024 * 1024;
  var CRED = "gongping.device";
  // One key per complaint: kept (per code) across retries and reloads, dropped once the content changes.
  var KEY = "gongping.idem." + (qrToken || "report");
  var memory = {};
  var located = null;

  function store(kind) {
    try { return kind === "local" ? window.localStorage : window.sessionStorage; } catch (e) { return null; }
  }
  function getItem(kind, name) {
    var s = store(kind);
    try { return s ? s.getItem(name) : (memory[name] || null); } catch (e) { return memory[name] || null; }
  }
  function setItem(kind, name, value) {
    memory[name] = value;
    var s = store(kind);
    try { if (s) { s.setItem(name, value); } } catch (e) { /* private mode: memory only */ }
  }
  function removeItem(kind, name) {
    delete memory[name];
    var s = store(kind);
    try { if (s) { s.removeItem(name); } } catch (e) { /* nothing stored */ }
  }
  function fill(text, values) {
    return String(text || "").replace(/\{(\w+)\}/g, function (m, k) { return k in values ? values[k] : m; });
  }
  function show(text, kind) {
    result.hidden = false;
    result.className = "result" + (kind ? " " + kind : "");
    result.textContent = text;
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }
  function idempotencyKey() {
    var key = getItem("session", KEY);
    if (!key) { key = uuid(); setItem("session", KEY, key); }
    return key;
  }
  function forgetKey() { removeItem("session", KEY); }

  function postJSON(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "omit",
      headers: { "Content-Type": "application/json", "Accept-Language": locale },
      body: JSON.stringify(body)
    });
  }
  function saveCredential(body, previous) {
    var cred = {
      access_token: body.access_token,
      refresh_token: body.refresh_token,
      expires_at: Date.now() + Math.max(0, (body.expires_in || 0) - 30) * 1000,
      device_id: body.device_id || (previous && previous.device_id) || null,
      device_secret: body.device_secret || (previous && previous.device_secret) || null
    };
    setItem("local", CRED, JSON.stringify(cred));
    return cred.access_token;
  }
  async function errorOf(resp) {
    var data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    var message = data && data.error ? data.error.message : resp.status + " " + resp.statusText;
    var err = new Error(message);
    err.status = resp.status;
    err.code = data && data.error ? data.error.code : "";
    return err;
  }
  // The page's own anonymous device credential, as the app gets one: registered once, then refreshed.
  async function accessToken(renew) {
    var cred = null;
    try { cred = JSON.parse(getItem("local", CRED) || "null"); } catch (e) { cred = null; }
    if (cred && !renew && cred.access_token && cred.expires_at > Date.now()) { return cred.access_token; }
    if (cred && cred.refresh_token) {
      var r = await postJSON("/api/v1/auth/refresh", { refresh_token: cred.refresh_token });
      if (r.ok) { return saveCredential(await r.json(), cred); }
    }
    if (cred && cred.device_id && cred.device_secret) {
      var login = new URLSearchParams({ username: cred.device_id, password: cred.device_secret });
      var t = await fetch("/api/v1/auth/token", { method: "POST", credentials: "omit", body: login });
      if (t.ok) { return saveCredential(await t.json(), cred); }
    }
    var d = await postJSON("/api/v1/auth/device", { locale: locale });
    if (!d.ok) { throw await errorOf(d); }
    return saveCredential(await d.json(), null);
  }

  async function send(body, files, key, renew) {
    var token = await accessToken(renew);
    var data = new FormData();
    data.append("complaint", JSON.stringify(body));
    for (var i = 0; i < files.length; i++) { data.append("photos", files[i], files[i].name || "photo.jpg"); }
    // The multipart form has its own operation; POST /api/v1/complaints takes the app's JSON only.
    return fetch("/api/v1/complaint-form", {
      method: "POST",
      credentials: "omit",
      headers: { "Authorization": "Bearer " + token, "Idempotency-Key": key, "Accept-Language": locale },
      body: data
    });
  }

  form.addEventListener("input", forgetKey);
  form.addEventListener("change", forgetKey);

  document.getElementById("locate").addEventListener("click", function () {
    if (!navigator.geolocation) { locStatus.textContent = msgs.geo_unavailable; return; }
    locStatus.textContent = msgs.locating;
    // Asked only on this tap: the browser's own prompt is the consent.
    navigator.geolocation.getCurrentPosition(function (pos) {
      located = {
        lon: pos.coords.longitude,
        lat: pos.coords.latitude,
        accuracy_m: Math.min(pos.coords.accuracy || 0, 100000),
        coord_system: "wgs84",
        captured_at: new Date(pos.timestamp || Date.now()).toISOString()
      };
      forgetKey();
      locStatus.textContent = fill(msgs.located, { m: Math.round(located.accuracy_m) });
    }, function (err) {
      locStatus.textContent = err && err.code === 1 ? msgs.geo_denied : msgs.geo_failed;
    }, { enableHighAccuracy: true, timeout: 20000, maximumAge: 60000 });
  });

  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var files = Array.prototype.slice.call(form.elements.photos.files || []);
    if (files.length > MAX_PHOTOS) { show(fill(msgs.too_many, { n: MAX_PHOTOS }), "err"); return; }
    if (files.some(function (f) { return f.size > MAX_PHOTO_BYTES; })) { show(msgs.too_big, "err"); return; }
    var description = form.elements.description.value.trim();
    var body = { category: form.elements.category.value, description: note ? (note + " " + description).trim() : description };
    if (qrToken) { body.qr_token = qrToken; }
    if (located) { body.location = located; }
    var address = form.elements.address ? form.elements.address.value.trim() : "";
    if (address.length >= 2) { body.address = address; }
    var phone = form.elements.phone.value.trim();
    if (phone) { body.contact = { phone: phone }; }
    if (!qrToken && !located && !body.address) { show(msgs.need_location, "err"); return; }
    submit.disabled = true;
    show(msgs.sending, "");
    var key = idempotencyKey();
    try {
      var resp = await send(body, files, key, false);
      if (resp.status === 401) { resp = await send(body, files, key, true); }
      if (resp.status === 200 || resp.status === 201) {
        var created = await resp.json();
        forgetKey();
        form.reset();
        located = null;
        locStatus.textContent = "";
        result.dataset.complaintId = String(created.id);
        result.dataset.caseNo = created.case_no;
        show(fill(msgs.success, { case_no: created.case_no, status: statuses[created.status] || created.status }), "ok");
      } else {
        throw await errorOf(resp);
      }
    } catch (err) {
      // A network failure keeps the key: the retry is answered with the complaint already made, never a second.
      show(err && err.status ? fill(msgs.failed, { message: err.message }) : msgs.network, "err");
    } finally {
      submit.disabled = false;
    }
  });
})();
