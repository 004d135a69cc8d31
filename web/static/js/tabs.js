// A tab list (WAI-ARIA "tabs" with automatic activation): one tab in the Tab order, the
// arrow keys, Home and End move between the tabs and choose; the one panel is labelled by
// the chosen tab. Emits "select" (detail: the tab's id) when a person chooses another tab.

export class Tabs extends EventTarget {
  /**
   * @param {HTMLElement} list an empty element, made the tablist
   * @param {HTMLElement} panel the tabpanel the tabs control
   * @param {string} label the tab list's accessible name
   */
  constructor(list, panel, label) {
    super();
    this.list = list;
    this.panel = panel;
    this.chosen = null;
    list.setAttribute("role", "tablist");
    list.setAttribute("aria-label", label);
    list.addEventListener("click", (event) => {
      const tab = event.target.closest("[role=tab]");
      if (tab) this._choose(tab, false);
    });
    list.addEventListener("keydown", (event) => this._key(event));
  }

  /** Show these tabs ([{id, label}]), `chosen` selected. */
  render(tabs, chosen) {
    this.list.replaceChildren(...tabs.map(({ id, label }) => {
      const tab = document.createElement("button");
      tab.type = "button";
      tab.id = `tab-${id}`;
      tab.dataset.id = id;
      tab.textContent = label;
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-controls", this.panel.id);
      return tab;
    }));
    this.list.hidden = tabs.length < 2;
    this.select(chosen);
  }

  /** Mark `id` chosen (without emitting "select"). */
  select(id) {
    this.chosen = id;
    for (const tab of this._tabs()) {
      const on = tab.dataset.id === id;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      if (on && !this.list.hidden) this.panel.setAttribute("aria-labelledby", tab.id);
    }
  }

  _tabs() { return [...this.list.querySelectorAll("[role=tab]")]; }

  _choose(tab, focus) {
    if (focus) tab.focus();
    if (tab.dataset.id === this.chosen) return;
    this.select(tab.dataset.id);
    this.dispatchEvent(new CustomEvent("select", { detail: tab.dataset.id }));
  }

  _key(event) {
    const tabs = this._tabs();
    const at = tabs.indexOf(document.activeElement);
    if (at < 0) return;
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    this._choose(tabs[(to + tabs.length) % tabs.length], true);
  }
}
