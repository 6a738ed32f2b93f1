// The audience page: counts the expression through POST /api/v1/audiences/preview as it is typed and then
// profiles it (/api/v1/audiences/profile), shows a refused expression with a caret under the place named,
// inserts tags from the library at the cursor, and loads and saves named audiences (/api/v1/saved-audiences/).
(function () {
  "use strict";
  const form = document.getElementById("audience-form");
  const field = document.getElementById("expression");
  const snapshot = document.getElementById("snapshot");
  const errorBox = document.getElementById("audience-error");
  const result = document.getElementById("audience-result");
  const profileBox = document.getElementById("audience-profile");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const headers = {"Content-Type": "application/json", "X-CSRFToken": csrf};
  const number = new Intl.NumberFormat();
  let timer = null, sequence = 0;

  function ask(url, question) {
    return fetch(url, {method: "POST", headers: headers, credentials: "same-origin", body: JSON.stringify(question)});
  }

  // Counts narrowed to a place come to sales staff as the suppressed map shows them: "< 5", or rounded.
  function shown(count) { return typeof count === "number" ? number.format(count) : count; }
  function percent(part, whole) {
    return whole && typeof part === "number" && typeof whole === "number" ? (100 * part / whole).toFixed(1) + "%" : "—";
  }

  function showError(text, error) {
    result.hidden = true;
    profileBox.hidden = true;
    errorBox.hidden = false;
    errorBox.replaceChildren();
    const message = document.createElement("div");
    message.textContent = text;
    errorBox.append(message);
    if (error && error.column) {
      // The line named, and a caret under the column (both 1-based).
      const line = field.value.split("\n")[(error.line || 1) - 1] || "";
      const where = document.createElement("pre");
      where.textContent = line + "\n" + " ".repeat(Math.max(0, error.column - 1)) + "^";
      errorBox.append(where);
    }
  }

  function showCount(body) {
    errorBox.hidden = true;
    result.hidden = false;
    document.getElementById("audience-count").textContent = shown(body.count) +
      (body.suppressed_below ? " " + interpolate(gettext("(rounded to %s)"), [body.suppressed_below]) : "");
    document.getElementById("audience-share").textContent =
      interpolate(gettext("%(share)s of %(total)s in my districts"),
                  {share: percent(body.count, body.subscribers), total: number.format(body.subscribers)}, true);
    // The revenue at stake: suppressed with a suppressed count, rounded with a rounded one (the server decides).
    const revenue = body.monthly_revenue;
    document.getElementById("audience-revenue").textContent =
      revenue === null || revenue === undefined ? "—" : "¥" + number.format(revenue);
    document.getElementById("audience-revenue-share").textContent = body.revenue_share === null || body.revenue_share === undefined ? "" :
      interpolate(gettext("%s of my districts' revenue"), [(100 * body.revenue_share).toFixed(1) + "%"]);
    document.getElementById("audience-snapshot").textContent = body.snapshot;
    document.getElementById("audience-elapsed").textContent = body.elapsed_ms + " ms";
    const rows = body.by_region.map(function (region) {
      const row = document.createElement("tr");
      [region.name + " " + region.region, shown(region.count), percent(region.count, body.count)].forEach(function (text, i) {
        const cell = document.createElement("td");
        cell.textContent = text;
        if (i) { cell.className = "num"; }
        row.append(cell);
      });
      return row;
    });
    document.querySelector("#audience-regions tbody").replaceChildren(...rows);
    const campaign = document.getElementById("new-campaign");
    if (campaign) { campaign.href = campaign.dataset.base + "?expression=" + encodeURIComponent(field.value); }
  }

  function profileRows(rows) {
    return rows.map(function (row) {
      const line = document.createElement("tr");
      const name = document.createElement("td");
      const link = document.createElement("a");
      link.href = "/tags/" + encodeURIComponent(row.tag) + "/";
      link.textContent = row.name + (row.name_en ? " " + row.name_en : "");
      link.title = row.tag;
      name.append(link);
      line.append(name);
      [shown(row.count) + " · " + percent(row.share, 1), percent(row.base_share, 1), row.index === null ? "—" : number.format(row.index)].forEach(function (text) {
        const cell = document.createElement("td");
        cell.className = "num";
        cell.textContent = text;
        line.append(cell);
      });
      return line;
    });
  }

  async function profile(mine, asked) {
    // Who the counted audience are: a second, heavier question, asked once the count is shown.
    const response = await ask(form.dataset.profile, asked);
    if (mine !== sequence || !response.ok) { return; }
    const body = await response.json();
    const minimum = Number(form.dataset.minCount);
    const indexed = body.tags.filter(function (row) { return row.index !== null; });
    const over = indexed.filter(function (row) {
      return row.index > 100 && typeof row.count === "number" && row.count >= minimum;
    }).slice(0, 10);
    // Least common first; among equals, the tags most common elsewhere say most.
    const under = indexed.filter(function (row) { return row.index < 100; })
      .sort(function (a, b) { return a.index - b.index || b.base_share - a.base_share; }).slice(0, 10);
    document.querySelector("#profile-over tbody").replaceChildren(...profileRows(over));
    document.querySelector("#profile-under tbody").replaceChildren(...profileRows(under));
    profileBox.hidden = body.count === 0 || typeof body.count !== "number";
  }

  async function change(mine, asked, now) {
    // The same audience in the snapshot before the one counted: is it growing?
    const out = document.getElementById("audience-change");
    out.textContent = "";
    const options = snapshot ? Array.from(snapshot.options) : [];
    const older = options[options.findIndex(function (o) { return o.value === snapshot.value; }) + 1];
    if (!older) { return; }
    const response = await ask(form.dataset.preview, Object.assign({}, asked, {snapshot: Number(older.value)}));
    if (mine !== sequence) { return; }
    if (!response.ok) { out.textContent = interpolate(gettext("not countable in %s"), [older.textContent]); return; }
    const before = await response.json();
    if (typeof now.count !== "number" || typeof before.count !== "number") {
      out.textContent = interpolate(gettext("was %(count)s (%(snapshot)s)"), {count: shown(before.count), snapshot: before.snapshot}, true);
      return;
    }
    const delta = now.count - before.count;
    out.textContent = interpolate(gettext("%(delta)s since %(snapshot)s (%(count)s)"),
      {delta: (delta > 0 ? "+" : "") + number.format(delta), snapshot: before.snapshot, count: number.format(before.count)}, true);
  }

  async function count() {
    const mine = ++sequence;
    const expression = field.value;
    history.replaceState(null, "", expression.trim() ? "?expression=" + encodeURIComponent(expression) : location.pathname);
    if (!expression.trim()) { errorBox.hidden = true; result.hidden = true; profileBox.hidden = true; return; }
    const asked = {expression: expression};
    if (snapshot && snapshot.value) { asked.snapshot = Number(snapshot.value); }
    let response, body;
    try {
      response = await ask(form.dataset.preview, asked);
      body = await response.json();
    } catch (failure) {
      if (mine === sequence) { showError(gettext("Could not count:") + " " + failure.message, null); }
      return;
    }
    if (mine !== sequence) { return; }  // a newer keystroke already asked
    if (!response.ok) {
      showError(body.detail || Object.values(body).flat().join(" "), body.error);
      return;
    }
    showCount(body);
    change(mine, asked, body);
    profile(mine, asked);
  }

  function later() { clearTimeout(timer); timer = setTimeout(count, 350); }

  function insert(code) {
    // At the cursor, joined with "and" on either side unless an operator or a bracket already stands there.
    const start = field.selectionStart, end = field.selectionEnd;
    const before = field.value.slice(0, start).replace(/\s+$/, "");
    const after = field.value.slice(end).replace(/^\s+/, "");
    const left = before === "" || /(\(|\band|\bor|\bnot)$/.test(before) ? "" : " and";
    const right = after === "" || /^(\)|and\b|or\b)/.test(after) ? "" : " and";
    const text = (before ? before + left + " " : "") + code;
    field.value = text + (after ? right + " " + after : "");
    field.focus();
    field.selectionStart = field.selectionEnd = text.length;
    count();
  }

  form.addEventListener("submit", function (event) { event.preventDefault(); count(); });
  field.addEventListener("input", later);
  if (snapshot) { snapshot.addEventListener("change", count); }
  document.querySelectorAll(".chip[data-code]").forEach(function (chip) {
    chip.addEventListener("click", function () { insert(chip.dataset.code); });
  });

  // Saved audiences: shown to whoever may see them, saved by whoever may add them.
  const saved = document.getElementById("saved-audiences");
  async function loadSaved() {
    const response = await fetch(form.dataset.saved, {credentials: "same-origin"});
    const body = await response.json();
    const items = (body.results || []).map(function (audience) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "chip";
      button.textContent = audience.name;
      button.title = audience.description || audience.expression;
      button.addEventListener("click", function () { field.value = audience.expression; count(); });
      const expression = document.createElement("code");
      expression.textContent = " " + audience.expression;
      item.append(button, expression);
      return item;
    });
    if (!items.length) {
      const none = document.createElement("li");
      none.className = "muted";
      none.textContent = gettext("None yet");
      items.push(none);
    }
    saved.replaceChildren(...items);
  }
  const saveForm = document.getElementById("save-audience");
  if (saveForm) {
    saveForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      const out = document.getElementById("save-result");
      const districts = saveForm.dataset.districts ? saveForm.dataset.districts.split(",") : [];
      const response = await ask(form.dataset.saved,
                                 {name: document.getElementById("audience-name").value, expression: field.value, regions: districts});
      const body = await response.json();
      if (!response.ok) {
        out.className = "bad";
        out.textContent = Object.entries(body).map(([name, problems]) => name + ": " + [].concat(problems).join(" ")).join("; ");
        return;
      }
      out.className = "muted";
      out.textContent = gettext("Saved:") + " " + body.name;
      loadSaved();
    });
  }
  if (saved) { loadSaved(); }
  // An expression from the address: tags picked from the library go after it.
  field.selectionStart = field.selectionEnd = field.value.length;
  if (field.value.trim()) { count(); }
})();
