/* The micro-area map: a hex choropleth of the user's districts, micro-area outlines, a panel per hex or
   micro-area, and drawing new micro-areas. Everything comes from the REST API with the session's login,
   so the page shows exactly what the API allows the user. Leaflet is served by django-leaflet. */
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("map-config").textContent);
  const $ = (id) => document.getElementById(id);
  const controls = { metric: $("metric"), product: $("product"), campaign: $("campaign"), basis: $("basis"), snapshot: $("snapshot"), resolution: $("resolution") };
  const COLOURS = ["#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494"];
  const SUPPRESSED = "#c5ccd6";
  const metrics = Object.fromEntries(config.metrics.map((m) => [m.code, m]));
  // A link may open the map on a view (/map/?metric=campaign_targets&campaign=7): all of it or, where it names
  // a choice the page does not offer (another region's campaign), none of it, rather than a view it did not ask for.
  const asked = [...new URLSearchParams(window.location.search)].filter(([name]) => controls[name] !== undefined);
  const offered = ([name, given]) => controls[name] && [...controls[name].options].some((o) => o.value === given);
  if (asked.every(offered)) asked.forEach(([name, given]) => { controls[name].value = given; });

  const map = L.map("map", { zoomSnap: 0.5 });
  map.setView([23.02, 113.12], 11);  // replaced by the districts' bounds once they load
  if (config.tile_url) {
    L.tileLayer(config.tile_url, { maxZoom: 19 }).addTo(map);
  }
  map.createPane("hexes").style.zIndex = 410;
  map.createPane("areas").style.zIndex = 420;

  const esc = (text) => String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const count = (n) => (n === null || n === undefined ? `&lt;${config.minimum_count}` : Number(n).toLocaleString("zh-CN"));
  const pct = (x) => (x === null || x === undefined ? "—" : `${(x * 100).toFixed(1)}%`);
  const delta = (d) => (d === null || d === undefined ? "" : ` <span class="${d >= 0 ? "up" : "down"}">(${d >= 0 ? "+" : ""}${d.toLocaleString("zh-CN")})</span>`);
  const value = (metric, v) => (metrics[metric].share ? pct(v) : count(v));

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function getJSON(url, options) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, ...options });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(Object.entries(body).map(([k, v]) => `${k}: ${[].concat(v).join(" ")}`).join("; ") || response.statusText);
      error.body = body;
      throw error;
    }
    return body;
  }

  function status(text) {
    $("status").textContent = text;
  }

  // --- hexes -------------------------------------------------------------------------------------------
  let hexLayer = null;
  let hexRequest = null;

  function classBreaks(values) {
    const sorted = values.filter((v) => v !== null).sort((a, b) => a - b);
    if (!sorted.length) return [];
    const breaks = [];
    for (let i = 1; i < COLOURS.length; i++) {
      const b = sorted[Math.min(sorted.length - 1, Math.floor((i * sorted.length) / COLOURS.length))];
      // Each break above the one before (and the lowest value), so that no class is empty.
      if (b > (breaks.length ? breaks[breaks.length - 1] : sorted[0])) breaks.push(b);
    }
    // A sparse metric (a few campaign targets among many empty hexes) can have all quantiles at the lowest
    // value: still tell the hexes that have any from those that have none.
    if (!breaks.length && sorted[sorted.length - 1] > sorted[0]) breaks.push(sorted.find((v) => v > sorted[0]));
    return breaks;
  }

  function colourOf(v, breaks) {
    if (v === null) return SUPPRESSED;
    let i = 0;
    while (i < breaks.length && v >= breaks[i]) i++;
    // Spread fewer classes over the whole ramp so that the darkest colour always means "highest".
    return COLOURS[breaks.length ? Math.round((i * (COLOURS.length - 1)) / breaks.length) : COLOURS.length - 1];
  }

  function drawLegend(metric, breaks, features) {
    const rows = [];
    if (features.some((f) => f.properties.value !== null)) {
      const bounds = [null, ...breaks, null];
      for (let i = 0; i + 1 < bounds.length; i++) {
        const low = bounds[i], high = bounds[i + 1];
        const sample = low === null ? (high === null ? 0 : high - 1e-9) : low;
        const text = low === null ? (high === null ? "all" : `&lt; ${value(metric, high)}`) : high === null ? `≥ ${value(metric, low)}` : `${value(metric, low)} – ${value(metric, high)}`;
        rows.push(`<div class="row"><span class="swatch" style="background:${colourOf(sample, breaks)}"></span>${text}</div>`);
      }
    }
    rows.push(`<div class="row"><span class="swatch" style="background:${SUPPRESSED}"></span>少于 ${config.minimum_count} 人不显示 fewer than ${config.minimum_count}: suppressed</div>`);
    $("legend").innerHTML = `<b>${esc(metrics[metric].label)}</b>${rows.join("")}`;
  }

  async function loadHexes() {
    const metric = controls.metric.value;
    controls.product.disabled = !metrics[metric].product;
    if (controls.campaign) controls.campaign.disabled = !metrics[metric].campaign;
    if (!config.snapshots.length) {
      status("还没有快照 No snapshot yet");
      return;
    }
    const query = new URLSearchParams({ resolution: controls.resolution.value, metric, basis: controls.basis.value, snapshot: controls.snapshot.value });
    if (metrics[metric].product) query.set("product", controls.product.value);
    if (metrics[metric].campaign) query.set("campaign", controls.campaign.value);
    if (hexRequest) hexRequest.abort();
    hexRequest = new AbortController();
    status("加载中 Loading…");
    let data;
    try {
      data = await getJSON(`/api/v1/hexes/?${query}`, { signal: hexRequest.signal });
    } catch (error) {
      if (error.name !== "AbortError") status(`出错 Error: ${error.message}`);
      return;
    }
    const breaks = classBreaks(data.features.map((f) => f.properties.value));
    if (hexLayer) hexLayer.remove();
    hexLayer = L.geoJSON(data, {
      pane: "hexes",
      style: (f) => ({ className: "hex", color: "#5b6b7b", weight: 0.5, fillOpacity: f.properties.value === null ? 0.35 : 0.75,
                       fillColor: colourOf(f.properties.value, breaks) }),
      onEachFeature: (f, layer) => {
        const p = f.properties;
        layer.bindTooltip(`<b>${esc(p.h3)}</b><br>${esc(metrics[metric].label)}: ${value(metric, p.value)}<br>用户 Subscribers: ${count(p.subscribers)}`, { sticky: true });
        layer.on("click", () => openHex(p.h3));
      },
    }).addTo(map);
    drawLegend(metric, breaks, data.features);
    status(`${data.features.length} 个六边形 hexes · 快照 snapshot ${data.snapshot}`);
    const element = map.getContainer();
    element.dataset.metric = metric;
    element.dataset.hexes = String(data.features.length);
    if (!areasLayer || !areasLayer.getLayers().length) fitTo(hexLayer);
  }

  let fitted = false;
  function fitTo(layer) {
    if (!fitted && layer.getLayers().length) {
      map.fitBounds(layer.getBounds(), { padding: [20, 20] });
      fitted = true;
    }
  }

  // --- micro-areas -------------------------------------------------------------------------------------
  let areasLayer = null;

  async function loadAreas() {
    const data = await getJSON("/api/v1/microareas/");
    if (areasLayer) areasLayer.remove();
    areasLayer = L.geoJSON(data, {
      pane: "areas",
      style: (f) => (f.properties.kind === "district"
        ? { className: "area district", color: "#1f2933", weight: 2.5, dashArray: "6 4", fill: false }
        : { className: "area", color: "#d9480f", weight: 2.5, fill: false }),
      onEachFeature: (f, layer) => {
        layer.bindTooltip(`${esc(f.properties.name)} · ${esc(f.properties.kind_label)}`);
        layer.on("click", (event) => { L.DomEvent.stopPropagation(event); openArea(f.properties.id); });
      },
    }).addTo(map);
    const list = data.features.map((f) => `<li data-id="${f.properties.id}">${esc(f.properties.name)} <span class="muted">${esc(f.properties.kind_label)}</span></li>`);
    $("areas").innerHTML = list.join("") || `<li class="muted">无 None</li>`;
    fitTo(areasLayer.getLayers().some((l) => l.feature.properties.kind === "district")
      ? L.featureGroup(areasLayer.getLayers().filter((l) => l.feature.properties.kind === "district")) : areasLayer);
  }

  $("areas").addEventListener("click", (event) => {
    const item = event.target.closest("li[data-id]");
    if (!item) return;
    const layer = areasLayer.getLayers().find((l) => String(l.feature.properties.id) === item.dataset.id);
    if (layer) map.fitBounds(layer.getBounds(), { padding: [30, 30] });
    openArea(item.dataset.id);
  });

  // --- the panel ---------------------------------------------------------------------------------------
  function showPanel(html) {
    $("panel-body").innerHTML = html;
    $("panel").hidden = false;
    map.invalidateSize();
  }
  $("panel-close").addEventListener("click", () => { $("panel").hidden = true; map.invalidateSize(); });

  let panelSource = null;  // what the panel shows, to refresh it when the product or snapshot changes

  function statsQuery() {
    const query = new URLSearchParams({ product: controls.product.value, snapshot: controls.snapshot.value });
    if (metrics[controls.metric.value].campaign) query.set("campaign", controls.campaign.value);
    return query;
  }

  async function openHex(cell) {
    panelSource = { kind: "hex", id: cell };
    showPanel(`<h2>六边形 Hex ${esc(cell)}</h2><p class="muted">加载中 Loading…</p>`);
    try {
      const stats = await getJSON(`/api/v1/hexes/${encodeURIComponent(cell)}/stats/?${statsQuery()}`);
      showPanel(renderStats(`六边形 Hex ${esc(cell)}`, `H3 res ${stats.hex.resolution} · ${stats.hexes} res-9`, stats,
        `/api/v1/hexes/${encodeURIComponent(cell)}/targets/`));
    } catch (error) {
      showPanel(`<h2>六边形 Hex ${esc(cell)}</h2><p class="error">${esc(error.message)}</p>`);
    }
  }

  async function openArea(id) {
    panelSource = { kind: "area", id };
    showPanel(`<h2>微区域 Micro-area</h2><p class="muted">加载中 Loading…</p>`);
    try {
      const stats = await getJSON(`/api/v1/microareas/${id}/stats/?${statsQuery()}`);
      showPanel(renderStats(esc(stats.area.name), `${esc(stats.area.kind_label)} · ${esc(stats.area.region_name)} · ${stats.hexes} res-9`, stats,
        `/api/v1/microareas/${id}/targets/`, id));
    } catch (error) {
      showPanel(`<h2>微区域 Micro-area</h2><p class="error">${esc(error.message)}</p>`);
    }
  }

  function renderStats(title, subtitle, s, targets, areaId) {
    const parts = [`<h2 id="panel-title">${title}</h2><div class="muted small">${subtitle}<br>快照 Snapshot ${esc(s.snapshot.date)}${
      s.previous_snapshot ? ` · 对比 vs ${esc(s.previous_snapshot.date)}` : ""}</div>`];
    parts.push(`<table><tr><th>居住用户 Living here</th><td class="num">${count(s.subscribers.home)}${delta(s.subscribers.home_change)}</td></tr>
      <tr><th>工作用户 Working here</th><td class="num">${count(s.subscribers.work)}</td></tr>
      <tr><th>5G终端占比 5G handsets</th><td class="num">${pct(s.five_g_handset_share)}</td></tr>
      ${s.moves ? `<tr><th>迁入 / 迁出 Moved in / out</th><td class="num">${count(s.moves.moved_in)} / ${count(s.moves.moved_out)}</td></tr>` : ""}</table>`);
    if (s.target_list) {
      const t = s.target_list;
      // A campaign's list is exported per micro-area (its residents), so the link is on micro-areas only.
      const link = areaId === undefined ? "" : `<p><a id="export-campaign-targets" href="/api/v1/campaigns/${t.id}/targets/?${
        new URLSearchParams({ area: areaId, format: "csv" })}">导出本区活动名单 Export the campaign's list here (CSV)</a></p>`;
      parts.push(`<h3>营销活动 Campaign</h3><table><tr><th>${esc(t.label)}<br>名单上住在这里 On its contact list, living here</th><td class="num" id="campaign-targets">${
        count(t.targets)}</td></tr></table>${link}`);
    }
    if (s.product) {
      const p = s.product;
      const cls = (name, label) => `<div>${label}<b>${count(p[name])}</b>${pct(p[`${name}_share`])}${delta(p[`${name}_change`])}</div>`;
      parts.push(`<h3>${esc(p.name)} ${esc(p.name_en)}</h3><div class="classes">${cls("developed", "已发展 Developed")}${
        cls("demand", "需求 Demand")}${cls("potential", "潜在 Potential")}</div>`);
      const query = new URLSearchParams({ product: p.code, snapshot: s.snapshot.id, format: "csv" });
      parts.push(`<p><a id="export-targets" href="${targets}?${query}">导出目标客户 Export targets (CSV)</a></p>`);
    }
    parts.push(`<h3>产品渗透 Product penetration</h3><table>${s.products.map((p) =>
      `<tr><td>${esc(p.name)}</td><td class="num">${count(p.users)}</td><td class="num">${pct(p.penetration)}</td></tr>`).join("")}</table>`);
    const mix = (rows) => rows.slice(0, 6).map((r) => `<tr><td>${esc(r.value)}</td><td class="num">${count(r.subscribers)}</td><td class="num">${pct(r.share)}</td></tr>`).join("");
    parts.push(`<h3>终端结构 Terminal mix</h3><table><tr><th colspan="3">品牌 Brand</th></tr>${mix(s.terminal_mix.brand)}
      <tr><th colspan="3">网络 Network</th></tr>${mix(s.terminal_mix.network)}<tr><th colspan="3">档次 Tier</th></tr>${mix(s.terminal_mix.tier)}</table>`);
    parts.push(`<h3>热门标签 Top tags</h3><table>${s.top_tags.map((t) =>
      `<tr><td title="${esc(t.code)}">${esc(t.name)}</td><td class="num">${count(t.count)}</td><td class="num">${pct(t.share)}</td></tr>`).join("") ||
      `<tr><td class="muted">—</td></tr>`}</table>`);
    return parts.join("");
  }

  // --- drawing a micro-area ----------------------------------------------------------------------------
  if (config.can_draw) {
    const drawn = new L.FeatureGroup().addTo(map);
    map.addControl(new L.Control.Draw({
      position: "topleft",
      draw: { polygon: { allowIntersection: false, showArea: false }, polyline: false, rectangle: false, circle: false, marker: false, circlemarker: false },
      edit: { featureGroup: drawn, edit: false, remove: false },
    }));
    map.on(L.Draw.Event.CREATED, (event) => {
      drawn.clearLayers();
      drawn.addLayer(event.layer);
      const geometry = event.layer.toGeoJSON().geometry;
      panelSource = null;
      showPanel(`<h2>新微区域 New micro-area</h2><form id="new-area">
        <label>名称 Name <input name="name" required maxlength="64"></label>
        <label>类型 Kind <select name="kind">${config.kinds.map((k) => `<option value="${esc(k.code)}">${esc(k.label)}</option>`).join("")}</select></label>
        <label>所属区县 District <select name="region">${config.districts.map((d) => `<option value="${esc(d.code)}">${esc(d.name)}</option>`).join("")}</select></label>
        <p class="error" id="new-area-error"></p><button type="submit">保存 Save</button></form>`);
      $("new-area").addEventListener("submit", async (submit) => {
        submit.preventDefault();
        const form = new FormData(submit.target);
        try {
          const created = await getJSON("/api/v1/microareas/", {
            method: "POST",
            headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
            body: JSON.stringify({ name: form.get("name"), kind: form.get("kind"), region: form.get("region"), geometry }),
          });
          drawn.clearLayers();
          await loadAreas();
          openArea(created.id);
        } catch (error) {
          $("new-area-error").textContent = error.message;
        }
      });
    });
  }

  // --- wiring ------------------------------------------------------------------------------------------
  for (const name of ["basis", "resolution"]) controls[name].addEventListener("change", loadHexes);
  // The panel follows what it counts: the product, the campaign (shown while its metric is), the snapshot.
  for (const name of ["metric", "product", "campaign", "snapshot"].filter((n) => controls[n])) {
    controls[name].addEventListener("change", () => {
      loadHexes();
      if (panelSource && !$("panel").hidden) (panelSource.kind === "hex" ? openHex : openArea)(panelSource.id);
    });
  }
  loadAreas().catch((error) => status(`出错 Error: ${error.message}`)).finally(loadHexes);
})();
