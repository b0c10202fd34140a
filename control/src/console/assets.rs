//! The console's files, embedded at build time from `control/ui/`: nothing
//! is read from the disk or fetched from elsewhere at run time.

/// Name under `/ui/assets/` (or `index.html`) → (content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../ui/index.html"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../ui/app.css"),
    ),
    ("app.js", JS, include_bytes!("../../ui/app.js")),
    ("api.js", JS, include_bytes!("../../ui/api.js")),
    ("dom.js", JS, include_bytes!("../../ui/dom.js")),
    ("charts.js", JS, include_bytes!("../../ui/charts.js")),
    ("pages/common.js", JS, include_bytes!("../../ui/pages/common.js")),
    (
        "pages/overview.js",
        JS,
        include_bytes!("../../ui/pages/overview.js"),
    ),
    (
        "pages/tenants.js",
        JS,
        include_bytes!("../../ui/pages/tenants.js"),
    ),
    ("pages/keys.js", JS, include_bytes!("../../ui/pages/keys.js")),
    (
        "pages/routing.js",
        JS,
        include_bytes!("../../ui/pages/routing.js"),
    ),
    ("pages/logs.js", JS, include_bytes!("../../ui/pages/logs.js")),
    ("pages/alerts.js", JS, include_bytes!("../../ui/pages/alerts.js")),
    ("pages/audit.js", JS, include_bytes!("../../ui/pages/audit.js")),
    (
        "pages/dataplanes.js",
        JS,
        include_bytes!("../../ui/pages/dataplanes.js"),
    ),
    (
        "vendor/uplot/uPlot.iife.min.js",
        JS,
        include_bytes!("../../ui/vendor/uplot/uPlot.iife.min.js"),
    ),
    (
        "vendor/uplot/uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../ui/vendor/uplot/uPlot.min.css"),
    ),
    (
        "vendor/uplot/LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../ui/vendor/uplot/LICENSE"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";

/// The embedded file `name`, if there is one (an exact match: no path is
/// resolved, so nothing outside this list can be named).
pub(super) fn find(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, t, b)| (*t, *b))
}
