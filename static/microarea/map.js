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

  // Every label is built as DOM nodes with text, never as markup: data (names, codes, messages) is never parsed.
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, given] of Object.entries(attrs || {})) {
      if (given === null || given === undefined || given === false) continue;
      if (name === "class") node.className = given;
      else if (name === "style") Object.assign(node.style, given);
      else node.setAttribute(name, given === true ? "" : given);
    }
    for (const child of children.flat(Infinity)) {
      if (child !== null && child !== undefined && child !== false) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }
  const locale = document.documentElement.lang || "zh-hans";
  const count = (n) => (n === null || n === undefined ? `<${config.minimum_count}` : Number(n).toLocaleString(locale));
  const pct = (x) => (x === null || x === undefined ? "—" : `${(x * 100).toFixed(1)}%`);
  const delta = (d) => (d === null || d === undefined ? "" : [" ", h("span", { class: d >= 0 ? "up" : "down" }, `(${d >= 0 ? "+" : ""}${d.toLocaleString(locale)})`)]);
  const value = (metric, v) => (metrics[metric].share ? pct(v) : count(v));
  const named = (thing) => (locale.startsWith("en") ? thing.name_en || thing.name : thing.name);

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
    const row = (colour, text) => h("div", { class: "row" }, h("span", { class: "swatch", style: { background: colour } }), text);
    const rows = [];
    if (features.some((f) => f.properties.value !== null)) {
      const bounds = [null, ...breaks, null];
      for (let i = 0; i + 1 < bounds.length; i++) {
        const low = bounds[i], high = bounds[i + 1];
        const sample = low === null ? (high === null ? 0 : high - 1e-9) : low;
        const text = low === null ? (high === null ? gettext("all") : `< ${value(metric, high)}`) : high === null ? `≥ ${value(metric, low)}` : `${value(metric, low)} – ${value(metric, high)}`;
        rows.push(row(colourOf(sample, breaks), text));
      }
    }
    rows.push(row(SUPPRESSED, interpolate(gettext("fewer than %s: suppressed"), [config.minimum_count])));
    $("legend").replaceChildren(h("b", {}, metrics[metric].label), ...rows);
  }

  async function loadHexes() {
    const metric = controls.metric.value;
    controls.product.disabled = !metrics[metric].product;
    if (controls.campaign) controls.campaign.disabled = !metrics[metric].campaign;
    if (!config.snapshots.length) {
      status(gettext("No snapshot yet"));
      return;
    }
    const query = new URLSearchParams({ resolution: controls.resolution.value, metric, basis: controls.basis.value, snapshot: controls.snapshot.value });
    if (metrics[metric].product) query.set("product", controls.product.value);
    if (metrics[metric].campaign) query.set("campaign", controls.campaign.value);
    if (hexRequest) hexRequest.abort();
    hexRequest = new AbortController();
    status(gettext("Loading…"));
    let data;
    try {
      data = await getJSON(`/api/v1/hexes/?${query}`, { signal: hexRequest.signal });
    } catch (error) {
      if (error.name !== "AbortError") status(`${gettext("Error:")} ${error.message}`);
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
        const leading = p.leading ? ` (${named(p.leading)})` : "";
        layer.bindTooltip(() => h("div", {}, h("b", {}, p.h3), h("br"), `${metrics[metric].label}: ${value(metric, p.value)}${leading}`, h("br"),
          `${gettext("Subscribers")}: ${count(p.subscribers)}`), { sticky: true });
        layer.on("click", () => openHex(p.h3));
      },
    }).addTo(map);
    drawLegend(metric, breaks, data.features);
    status(interpolate(gettext("%(hexes)s hexes · snapshot %(snapshot)s"), { hexes: data.features.length, snapshot: data.snapshot }, true));
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
        layer.bindTooltip(() => h("span", {}, `${f.properties.name} · ${f.properties.kind_label}`));
        layer.on("click", (event) => { L.DomEvent.stopPropagation(event); openArea(f.properties.id); });
      },
    }).addTo(map);
    const list = data.features.map((f) => h("li", { "data-id": f.properties.id }, f.properties.name, " ", h("span", { class: "muted" }, f.properties.kind_label)));
    $("areas").replaceChildren(...(list.length ? list : [h("li", { class: "muted" }, gettext("None"))]));
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
  function showPanel(...nodes) {
    $("panel-body").replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
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

  const loading = () => h("p", { class: "muted" }, gettext("Loading…"));
  const failed = (error) => h("p", { class: "error" }, error.message);

  async function openHex(cell) {
    panelSource = { kind: "hex", id: cell };
    const title = `${gettext("Hex")} ${cell}`;
    showPanel(h("h2", {}, title), loading());
    try {
      const stats = await getJSON(`/api/v1/hexes/${encodeURIComponent(cell)}/stats/?${statsQuery()}`);
      showPanel(renderStats(title, `H3 res ${stats.hex.resolution} · ${stats.hexes} res-9`, stats,
        `/api/v1/hexes/${encodeURIComponent(cell)}/targets/`));
    } catch (error) {
      showPanel(h("h2", {}, title), failed(error));
    }
  }

  async function openArea(id) {
    panelSource = { kind: "area", id };
    showPanel(h("h2", {}, gettext("Micro-area")), loading());
    try {
      const stats = await getJSON(`/api/v1/microareas/${id}/stats/?${statsQuery()}`);
      showPanel(renderStats(stats.area.name, `${stats.area.kind_label} · ${stats.area.region_name} · ${stats.hexes} res-9`, stats,
        `/api/v1/microareas/${id}/targets/`, id));
    } catch (error) {
      showPanel(h("h2", {}, gettext("Micro-area")), failed(error));
    }
  }

  const numberCell = (...content) => h("td", { class: "num" }, ...content);
  const labelled = (label, ...content) => h("tr", {}, h("th", {}, label), numberCell(...content));

  function renderStats(title, subtitle, s, targets, areaId) {
    const parts = [h("h2", { id: "panel-title" }, title), h("div", { class: "muted small" }, subtitle, h("br"),
      `${gettext("Snapshot")} ${s.snapshot.date}`, s.previous_snapshot ? ` · ${gettext("vs")} ${s.previous_snapshot.date}` : "")];
    parts.push(h("table", {},
      labelled(gettext("Living here"), count(s.subscribers.home), delta(s.subscribers.home_change)),
      labelled(gettext("Working here"), count(s.subscribers.work)),
      labelled(gettext("5G handsets"), pct(s.five_g_handset_share)),
      s.moves ? labelled(gettext("Moved in / out"), `${count(s.moves.moved_in)} / ${count(s.moves.moved_out)}`) : null));
    if (s.target_list) {
      const list = s.target_list;
      parts.push(h("h3", {}, gettext("Campaign")), h("table", {}, h("tr", {},
        h("th", {}, list.label, h("br"), gettext("On its contact list, living here")), h("td", { class: "num", id: "campaign-targets" }, count(list.targets)))));
      // A campaign's list is exported per micro-area (its residents), so the link is on micro-areas only.
      if (areaId !== undefined) {
        parts.push(h("p", {}, h("a", { id: "export-campaign-targets",
          href: `/api/v1/campaigns/${list.id}/targets/?${new URLSearchParams({ area: areaId, format: "csv" })}` }, gettext("Export the campaign's list here (CSV)"))));
      }
    }
    if (s.product) {
      const p = s.product;
      const cls = (name, label) => h("div", {}, label, h("b", {}, count(p[name])), pct(p[`${name}_share`]), delta(p[`${name}_change`]));
      const query = new URLSearchParams({ product: p.code, snapshot: s.snapshot.id, format: "csv" });
      parts.push(h("h3", {}, named(p)), h("div", { class: "classes" }, cls("developed", gettext("Developed")), cls("demand", gettext("Demand")), cls("potential", gettext("Potential"))),
        h("p", {}, h("a", { id: "export-targets", href: `${targets}?${query}` }, gettext("Export targets (CSV)"))));
    }
    const row = (...cells) => h("tr", {}, h("td", {}, cells[0]), cells.slice(1).map((c) => numberCell(c)));
    parts.push(h("h3", {}, gettext("Product penetration")), h("table", {}, s.products.map((p) => row(named(p), count(p.users), pct(p.penetration)))));
    const mix = (rows) => rows.slice(0, 6).map((r) => row(r.value, count(r.subscribers), pct(r.share)));
    const heading = (label) => h("tr", {}, h("th", { colspan: 3 }, label));
    parts.push(h("h3", {}, gettext("Terminal mix")), h("table", {}, heading(gettext("Brand")), mix(s.terminal_mix.brand),
      heading(gettext("Network")), mix(s.terminal_mix.network), heading(gettext("Tier")), mix(s.terminal_mix.tier)));
    parts.push(h("h3", {}, gettext("Top tags")), h("table", {}, s.top_tags.length
      ? s.top_tags.map((tag) => h("tr", {}, h("td", { title: tag.code }, tag.name), numberCell(count(tag.count)), numberCell(pct(tag.share))))
      : h("tr", {}, h("td", { class: "muted" }, "—"))));
    return parts;
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
      const options = (items, code, label) => items.map((item) => h("option", { value: item[code] }, item[label]));
      showPanel(h("h2", {}, gettext("New micro-area")), h("form", { id: "new-area" },
        h("label", {}, `${gettext("Name")} `, h("input", { name: "name", required: true, maxlength: 64 })),
        h("label", {}, `${gettext("Kind")} `, h("select", { name: "kind" }, options(config.kinds, "code", "label"))),
        h("label", {}, `${gettext("District")} `, h("select", { name: "region" }, options(config.districts, "code", "name"))),
        h("p", { class: "error", id: "new-area-error" }), h("button", { type: "submit" }, gettext("Save"))));
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
  loadAreas().catch((error) => status(`${gettext("Error:")} ${error.message}`)).finally(loadHexes);
})();
