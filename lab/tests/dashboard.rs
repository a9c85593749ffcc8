//! The operators' Grafana dashboard in `deploy/`: the runbook's panels
//! verbatim and a sound structure.

use serde_json::Value;

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/grafana/heat-observer.json"
);

/// The runbook's panel 3 and panel 4 expressions, as it writes them.
const PANEL_3: &str = "sum by (obs_point, heat_found) (\n  increase(p28_observed_total[15m])\n)";
const PANEL_4: &str = "sum(increase(p28_observed_total{obs_point=\"publish_plan_post\",heat_found=\"1\"}[15m]))\n/\nsum(increase(p28_observed_total{obs_point=\"publish_plan_post\"}[15m]))";

#[test]
fn the_dashboard_has_the_runbooks_panels_and_a_sound_structure() {
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    assert!(
        dashboard["schemaVersion"].as_u64().unwrap() >= 36,
        "Grafana 9+"
    );
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["name"] == "datasource"),
        "a datasource variable"
    );
    // An import asks for the data source (Grafana's `__inputs`), and the
    // variable starts on the one chosen.
    let inputs = dashboard["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "{inputs:?}"
    );
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["current"]["value"] == "${DS_PROMETHEUS}")
    );
    let instance = variables
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("an instance variable");
    assert_eq!(instance["type"], "query");
    assert_eq!(instance["includeAll"], true);
    assert!(
        instance["definition"]
            .as_str()
            .is_some_and(|q| q.starts_with("label_values(p28_") && q.ends_with(", instance)"))
    );
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = Vec::new();
    let mut exprs = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("");
        assert!(!title.is_empty(), "a panel without a title: {panel}");
        ids.push(panel["id"].as_u64().unwrap());
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{title}: hard-coded datasource"
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no target");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            assert!(expr.contains("p28_"), "{title}: {expr}");
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            exprs.push(expr.to_owned());
        }
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "panel ids repeat: {ids:?}");
    // Every series a panel reads is filtered by the instance variable;
    // without that filter, the runbook's panels read verbatim.
    for e in &exprs {
        assert_eq!(
            e.matches("p28_").count(),
            e.matches("{instance=~\"$instance\"").count(),
            "a series not filtered by instance: {e}"
        );
    }
    let exprs: Vec<String> = exprs
        .iter()
        .map(|e| {
            e.replace("{instance=~\"$instance\"}", "")
                .replace("instance=~\"$instance\",", "")
        })
        .collect();
    assert!(
        exprs.iter().any(|e| e == PANEL_3),
        "the runbook's panel 3, verbatim"
    );
    assert!(
        exprs.iter().any(|e| e == PANEL_4),
        "the runbook's panel 4, verbatim"
    );
    for series in [
        "p28_refused_total",
        "p28_failed_total",
        "p28_queue_depth",
        "p28_in_flight",
        "p28_heat_wait_seconds_bucket",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(series)),
            "no panel shows {series}"
        );
    }
    let kinds: Vec<&str> = panels.iter().filter_map(|p| p["type"].as_str()).collect();
    assert!(kinds.contains(&"heatmap"), "{kinds:?}");
    assert_eq!(
        exprs
            .iter()
            .filter(|e| e.starts_with("histogram_quantile("))
            .count(),
        3
    );
}
