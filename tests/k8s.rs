//! The Kubernetes manifests: every overlay renders, and every Deployment has
//! probes, resources, a non-root security context and a read-only root
//! filesystem, a PodDisruptionBudget, and the gateway an autoscaler.
//!
//! Rendering uses `kubectl kustomize` when kubectl is installed, and
//! otherwise a small built-in renderer for the subset of kustomize the
//! manifests use (resources, namespace, labels, images, replicas, strategic
//! merge patches); where kubectl exists the two are cross-checked.

use serde_norway::{Mapping, Value};
use std::path::{Path, PathBuf};

fn k8s_dir() -> PathBuf {
    gsl_testkit::workspace_root().join("deploy/k8s")
}

fn overlays() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(k8s_dir().join("overlays"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    assert!(v.len() >= 2, "at least two overlays");
    v
}

fn docs(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn kubectl(dir: &Path) -> Option<Vec<Value>> {
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(docs(&String::from_utf8_lossy(&out.stdout)))
}

// ---- the built-in renderer ----

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn set(v: &mut Value, path: &[&str], x: Value) {
    let mut cur = v;
    for k in &path[..path.len() - 1] {
        let m = cur.as_mapping_mut().expect("mapping");
        cur = m
            .entry(Value::from(*k))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
    }
    cur.as_mapping_mut()
        .expect("mapping")
        .insert(Value::from(path[path.len() - 1]), x);
}

/// Strategic merge: maps merge; lists of maps with `name` merge by name; anything else is replaced.
fn merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Mapping(am), Value::Mapping(bm)) => {
            for (k, bv) in bm {
                match am.get_mut(k) {
                    Some(av) => merge(av, bv),
                    None => {
                        am.insert(k.clone(), bv.clone());
                    }
                }
            }
        }
        (Value::Sequence(al), Value::Sequence(bl))
            if bl.iter().all(|x| x.get("name").is_some()) =>
        {
            for bv in bl {
                match al.iter_mut().find(|x| x.get("name") == bv.get("name")) {
                    Some(av) => merge(av, bv),
                    None => al.push(bv.clone()),
                }
            }
        }
        (a, b) => *a = b.clone(),
    }
}

fn render(dir: &Path) -> Vec<Value> {
    let k: Value =
        serde_norway::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap())
            .unwrap();
    let list = |key: &str| {
        k.get(key)
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for r in list("resources") {
        let p = dir.join(r.as_str().unwrap());
        if p.is_dir() {
            out.extend(render(&p));
        } else {
            out.extend(docs(&std::fs::read_to_string(&p).unwrap()));
        }
    }
    for l in list("labels") {
        for (k2, v) in l
            .get("pairs")
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default()
        {
            for d in &mut out {
                set(d, &["metadata", "labels", k2.as_str().unwrap()], v.clone());
            }
        }
    }
    if let Some(ns) = k.get("namespace") {
        for d in &mut out {
            set(d, &["metadata", "namespace"], ns.clone());
        }
    }
    for img in list("images") {
        let name = img.get("name").and_then(Value::as_str).unwrap();
        let tag = img.get("newTag").and_then(Value::as_str).unwrap();
        for d in &mut out {
            for c in d
                .get_mut("spec")
                .and_then(|s| s.get_mut("template"))
                .and_then(|t| t.get_mut("spec"))
                .and_then(|s| s.get_mut("containers"))
                .and_then(Value::as_sequence_mut)
                .into_iter()
                .flatten()
            {
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_some_and(|i| i.split(':').next() == Some(name))
                {
                    c.as_mapping_mut()
                        .unwrap()
                        .insert("image".into(), format!("{name}:{tag}").into());
                }
            }
        }
    }
    for r in list("replicas") {
        let name = r.get("name").cloned();
        for d in out.iter_mut().filter(|d| {
            get(d, &["kind"]).and_then(Value::as_str) == Some("Deployment")
                && get(d, &["metadata", "name"]) == name.as_ref()
        }) {
            set(d, &["spec", "replicas"], r.get("count").cloned().unwrap());
        }
    }
    for p in list("patches") {
        let patch: Value = serde_norway::from_str(
            &std::fs::read_to_string(dir.join(p.get("path").and_then(Value::as_str).unwrap()))
                .unwrap(),
        )
        .unwrap();
        let target = out
            .iter_mut()
            .find(|d| {
                d.get("kind") == patch.get("kind")
                    && get(d, &["metadata", "name"]) == get(&patch, &["metadata", "name"])
            })
            .expect("patch target exists");
        merge(target, &patch);
    }
    out
}

// ---- the checks ----

fn name(d: &Value) -> String {
    get(d, &["metadata", "name"])
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

fn of_kind<'a>(ds: &'a [Value], kind: &str) -> Vec<&'a Value> {
    ds.iter()
        .filter(|d| get(d, &["kind"]).and_then(Value::as_str) == Some(kind))
        .collect()
}

fn check(overlay: &Path, ds: &[Value]) {
    let deployments = of_kind(ds, "Deployment");
    assert!(
        deployments.len() >= 5,
        "{}: gateway and four adapters",
        overlay.display()
    );
    let pdbs = of_kind(ds, "PodDisruptionBudget");
    for d in &deployments {
        let n = name(d);
        let pod = get(d, &["spec", "template", "spec"]).expect("pod spec");
        assert_eq!(
            get(pod, &["securityContext", "runAsNonRoot"]),
            Some(&Value::Bool(true)),
            "{n}: pod runs as non-root"
        );
        let containers = pod
            .get("containers")
            .and_then(Value::as_sequence)
            .expect("containers");
        for c in containers {
            for probe in ["livenessProbe", "readinessProbe"] {
                assert!(c.get(probe).is_some(), "{n}: {probe}");
            }
            for (kind, res) in [
                ("requests", "cpu"),
                ("requests", "memory"),
                ("limits", "cpu"),
                ("limits", "memory"),
            ] {
                assert!(
                    get(c, &["resources", kind, res]).is_some(),
                    "{n}: resources.{kind}.{res}"
                );
            }
            let sc = c
                .get("securityContext")
                .expect("container security context");
            assert_eq!(
                sc.get("runAsNonRoot"),
                Some(&Value::Bool(true)),
                "{n}: non-root"
            );
            assert_eq!(
                sc.get("readOnlyRootFilesystem"),
                Some(&Value::Bool(true)),
                "{n}: read-only root filesystem"
            );
            assert_eq!(
                sc.get("allowPrivilegeEscalation"),
                Some(&Value::Bool(false)),
                "{n}: no privilege escalation"
            );
        }
        let labels = get(d, &["spec", "selector", "matchLabels"]).cloned();
        assert!(
            pdbs.iter()
                .any(|p| get(p, &["spec", "selector", "matchLabels"]).cloned() == labels),
            "{n}: a PodDisruptionBudget"
        );
    }
    // Every gsl workload (and the setup Job) is selected by a NetworkPolicy
    // that restricts both directions.
    let policies = of_kind(ds, "NetworkPolicy");
    let jobs = of_kind(ds, "Job");
    for w in deployments.iter().chain(jobs.iter()) {
        let n = name(w);
        if !n.starts_with("gsl-") {
            continue;
        }
        let app = get(
            w,
            &[
                "spec",
                "template",
                "metadata",
                "labels",
                "app.kubernetes.io/name",
            ],
        )
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
        let selected = policies.iter().any(|p| {
            let both = get(p, &["spec", "policyTypes"])
                .and_then(Value::as_sequence)
                .is_some_and(|t| t.len() == 2);
            let by_label = get(
                p,
                &[
                    "spec",
                    "podSelector",
                    "matchLabels",
                    "app.kubernetes.io/name",
                ],
            )
            .and_then(Value::as_str)
                == Some(app.as_str());
            let by_set = get(p, &["spec", "podSelector", "matchExpressions"])
                .and_then(Value::as_sequence)
                .is_some_and(|es| {
                    es.iter().any(|e| {
                        e.get("values")
                            .and_then(Value::as_sequence)
                            .is_some_and(|v| v.iter().any(|x| x.as_str() == Some(app.as_str())))
                    })
                });
            both && (by_label || by_set)
        });
        assert!(selected, "{n}: a NetworkPolicy for ingress and egress");
    }
    let hpa = of_kind(ds, "HorizontalPodAutoscaler");
    assert!(
        hpa.iter().any(
            |h| get(h, &["spec", "scaleTargetRef", "name"]).and_then(Value::as_str)
                == Some("gsl-gateway")
        ),
        "gateway autoscaler"
    );
}

/// What both renderers must agree on.
fn summary(ds: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = of_kind(ds, "Deployment")
        .iter()
        .map(|d| {
            let pod = get(d, &["spec", "template", "spec"]).unwrap();
            let c = &pod["containers"][0];
            // Order of env entries is not meaningful (kubectl puts patched ones first).
            let mut env: Vec<String> = c["env"]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|e| format!("{}={:?}", e["name"].as_str().unwrap_or(""), e.get("value")))
                .collect();
            env.sort();
            format!(
                "{} ns={:?} replicas={:?} image={:?} env={env:?}",
                name(d),
                get(d, &["metadata", "namespace"]),
                get(d, &["spec", "replicas"]),
                c.get("image")
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_overlay_renders_and_every_deployment_is_hardened() {
    for overlay in overlays() {
        let builtin = render(&overlay);
        check(&overlay, &builtin);
        if std::env::var("GSL_K8S_RENDERER").as_deref() != Ok("builtin")
            && let Some(k) = kubectl(&overlay)
        {
            check(&overlay, &k);
            assert_eq!(
                summary(&builtin),
                summary(&k),
                "{}: the built-in renderer agrees with kubectl",
                overlay.display()
            );
        }
    }
}

#[test]
fn the_example_overlay_applies_its_changes() {
    let ds = render(&k8s_dir().join("overlays/example"));
    let ct = ds.iter().find(|d| name(d) == "gsl-adapter-ct").unwrap();
    assert_eq!(get(ct, &["spec", "replicas"]), Some(&Value::from(3)));
    let env = get(ct, &["spec", "template", "spec", "containers"]).unwrap()[0]["env"]
        .as_sequence()
        .unwrap();
    let rate = env.iter().find(|e| e["name"] == "GSL_RATE_CHANGE").unwrap();
    assert_eq!(rate["value"], "50");
    assert!(
        env.iter().any(|e| e["name"] == "GSL_CARRIER_SECRET"),
        "patched env merged, not replaced"
    );
    assert!(
        ds.iter().all(
            |d| get(d, &["metadata", "namespace"]).and_then(Value::as_str) == Some("gsl-prod")
        )
    );
}

/// The TLS overlay mounts the CA into every workload, points every service
/// at it, gives the gateway its certificate, and no longer probes the
/// gateway with clear-text gRPC.
#[test]
fn the_tls_overlay_turns_tls_on_for_every_workload() {
    let ds = render(&k8s_dir().join("overlays/tls"));
    let cm = ds.iter().find(|d| name(d) == "gsl-common").unwrap();
    let data = |k: &str| get(cm, &["data", k]).and_then(Value::as_str).unwrap_or("");
    assert!(data("GSL_GATEWAY_URL").starts_with("https://"));
    for k in ["GSL_NATS_CA_CERT", "GSL_GATEWAY_CA_CERT"] {
        assert!(data(k).starts_with("/etc/gsl/tls/"), "{k}");
    }
    let workloads: Vec<&Value> = ds
        .iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("Deployment" | "Job")))
        .collect();
    assert_eq!(
        workloads.len(),
        7,
        "gateway, migrate, four adapters, gsl-push"
    );
    for w in workloads {
        let spec = get(w, &["spec", "template", "spec"]).unwrap();
        let c = &spec["containers"][0];
        let mounted = c["volumeMounts"]
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|m| m["mountPath"] == "/etc/gsl/tls");
        assert!(mounted, "{}: the CA is mounted", name(w));
        let secret = spec["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|v| get(v, &["secret", "secretName"]) == Some(&Value::from("gsl-tls")));
        assert!(secret, "{}: from the gsl-tls Secret", name(w));
        assert!(
            c["envFrom"].as_sequence().is_some_and(|s| !s.is_empty()),
            "{}: still reads gsl-common",
            name(w)
        );
    }
    let gw = ds
        .iter()
        .find(|d| name(d) == "gsl-gateway" && d["kind"] == "Deployment")
        .unwrap();
    let c = &get(gw, &["spec", "template", "spec", "containers"]).unwrap()[0];
    let env = c["env"].as_sequence().unwrap();
    for k in ["GSL_TLS_CERT", "GSL_TLS_KEY", "GSL_TENANT_TOKENS"] {
        assert!(env.iter().any(|e| e["name"] == k), "gateway env {k}");
    }
    assert!(
        c["readinessProbe"]["grpc"].is_null() && c["readinessProbe"]["httpGet"].is_mapping(),
        "a kubelet gRPC probe cannot speak TLS"
    );
}

/// Every metric an alert names is one the services export (a renamed metric
/// would otherwise silence its alert without anyone noticing). A counter is
/// registered without its `_total`.
#[test]
fn alert_rules_name_only_metrics_the_services_export() {
    let p = k8s_dir().join("monitoring/prometheus-rules.yaml");
    let rules: Value = serde_norway::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let src: String = [
        "services/gateway/src/core.rs",
        "crates/adapter-kit/src/sync/mod.rs",
        "services/push/src/lib.rs",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(gsl_testkit::workspace_root().join(f)).unwrap())
    .collect();
    let mut n = 0;
    for g in rules["spec"]["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            let expr = r["expr"].as_str().unwrap();
            for m in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("gsl_"))
            {
                let registered = m.strip_suffix("_total").unwrap_or(m);
                assert!(
                    src.contains(&format!("\"{registered}\"")),
                    "{m} is not exported"
                );
                n += 1;
            }
        }
    }
    assert!(n >= 2, "the rules name gsl metrics");
}

/// The NATS users of the Helm values grant exactly what the code says each
/// service needs (`gsl_bus::permissions`), nothing broader.
#[test]
fn nats_users_are_the_least_privilege_ones_of_the_code() {
    use gsl_bus::permissions::{Role, for_role, inbox_of, render_user_yaml};
    let values = std::fs::read_to_string(k8s_dir().join("nats-values.yaml")).unwrap();
    let mut roles = vec![
        (
            "gsl-migrate",
            Role::Migrate,
            "$MIGRATE_PASSWORD".to_string(),
        ),
        ("gateway", Role::Gateway, "$GATEWAY_PASSWORD".into()),
        ("gsl-push", Role::Push, "$PUSH_PASSWORD".into()),
        (
            "intake-acme",
            Role::Intake("acme".into()),
            "$INTAKE_ACME_PASSWORD".into(),
        ),
    ];
    for c in gsl_domain::Carrier::ALL {
        let user: &'static str = Box::leak(format!("adapter-{c}").into_boxed_str());
        roles.push((
            user,
            Role::Adapter(c),
            format!("$ADAPTER_{}_PASSWORD", c.as_str().to_uppercase()),
        ));
    }
    for (user, role, pw) in roles {
        let want = render_user_yaml(user, &pw, &for_role(&role, &inbox_of(&role)));
        assert!(
            values.contains(&want),
            "{user} in nats-values.yaml differs from the code:\n{want}"
        );
    }
    assert!(
        !values.contains("\"_INBOX.>\""),
        "no user reads every inbox"
    );
    assert_eq!(
        values.matches("$JS.API.>").count(),
        1,
        "only the migrate user administers JetStream"
    );
}
