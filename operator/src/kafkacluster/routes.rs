//! External listeners behind Contour (HTTPProxies) or a Gateway (Gateway API TLSRoutes): the
//! ClusterIP Services and routes `render::contour` and `render::gateway` render, read, planned
//! and, with `removeUnusedIngressResources`, removed once nothing wants them.
//!
//! The route kinds are custom resources of Contour and of the Gateway API: when their CRD is
//! missing, the cluster reports it (Degraded) instead of failing every reconcile.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, ResourceExt};

use koperator_shared::render::cluster_ip::{self, Controller};
use koperator_shared::render::{contour, gateway};
use koperator_shared::validated::ValidatedCluster;

use super::Error;
use super::plan::{Deletion, Object, OwnedKind, Wanted};
use crate::apply::{owned_by, owned_by_uid};
use crate::controller::{Context, kube_err};

/// The route kinds, each with the controller that renders it.
const CONTROLLERS: [Controller; 2] = [Controller::Contour, Controller::GatewayApi];

/// The kind of route `controller` renders, as the API server serves it.
pub fn api_resource(controller: Controller) -> ApiResource {
    match controller {
        Controller::Contour => contour::api_resource(),
        Controller::GatewayApi => gateway::api_resource(),
    }
}

/// The cluster's live Services and routes of the ClusterIP ingress controllers.
#[derive(Debug, Default)]
pub struct RoutesLive {
    /// Their Services (any-cast and per broker), by name.
    pub services: BTreeMap<String, Service>,
    /// Their routes, by kind and name.
    pub routes: BTreeMap<(String, String), DynamicObject>,
    /// Route kinds that could not be read (their CRD is not installed), with why.
    pub unreadable: BTreeMap<String, String>,
}

/// Whether `cluster` may have objects of `controller` to apply or remove.
fn involved(cluster: &ValidatedCluster, controller: Controller) -> bool {
    cluster.spec.remove_unused_ingress_resources == Some(true)
        || cluster.spec.listeners_config.external().iter().any(|l| controller.serves(&cluster.spec, l))
}

/// Reads the Services and routes labelled as `cluster`'s Contour or Gateway API objects, and
/// those with the names it wants (a same-named object of someone else's is seen too).
pub async fn read(cluster: &ValidatedCluster, ctx: &Context, ns: &str) -> Result<RoutesLive, Error> {
    let mut live = RoutesLive::default();
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    for controller in CONTROLLERS.into_iter().filter(|k| involved(cluster, *k)) {
        let selector = format!("app={},kafka_cr={}", controller.app_label(), cluster.name_any());
        let lp = ListParams::default().labels(&selector);
        for s in services.list(&lp).await.map_err(kube_err("list", "Service"))? {
            live.services.insert(s.name_any(), s);
        }
        let wanted = objects(cluster, controller);
        let missing: Vec<String> =
            wanted.services.iter().map(|s| s.name_any()).filter(|n| !live.services.contains_key(n)).collect();
        for name in missing {
            if let Some(found) = services.get_opt(&name).await.map_err(kube_err("get", format!("Service/{name}")))? {
                live.services.insert(name, found);
            }
        }
        let ar = api_resource(controller);
        let routes: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ar);
        match routes.list(&lp).await {
            Ok(list) => {
                for r in list {
                    live.routes.insert((ar.kind.clone(), r.name_any()), r);
                }
                let missing: Vec<String> = wanted
                    .routes
                    .iter()
                    .map(|r| r.name_any())
                    .filter(|n| !live.routes.contains_key(&(ar.kind.clone(), n.clone())))
                    .collect();
                for name in missing {
                    let found = routes.get_opt(&name).await.map_err(kube_err("get", format!("{}/{name}", ar.kind)))?;
                    if let Some(found) = found {
                        live.routes.insert((ar.kind.clone(), name), found);
                    }
                }
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {
                let crd = format!("{}.{}", ar.plural, ar.group);
                live.unreadable.insert(ar.kind.clone(), format!("the {crd} CRD is not installed ({})", e.message));
            }
            Err(e) => return Err(kube_err("list", ar.kind.clone())(e)),
        }
    }
    Ok(live)
}

/// What `controller` renders for `cluster`.
fn objects(cluster: &ValidatedCluster, controller: Controller) -> cluster_ip::Objects {
    match controller {
        Controller::Contour => contour::objects(cluster),
        Controller::GatewayApi => gateway::objects(cluster),
    }
}

/// The plan's part for Contour and Gateway API objects that is not an object to apply.
#[derive(Debug, Default)]
pub struct RoutesPlan {
    /// Names of the Services wanted (never deleted as some other Service left over).
    pub services: BTreeSet<String>,
    /// Objects of theirs nothing wants any more, deleted with `removeUnusedIngressResources`.
    pub unused: Vec<Deletion>,
    /// Why some of them cannot be applied (for the Degraded condition).
    pub problems: Vec<String>,
}

/// Adds the Services and routes `cluster` wants to `wanted`, and decides what is unused.
pub(super) fn plan(
    cluster: &ValidatedCluster,
    live: &RoutesLive,
    owner: &OwnerReference,
    wanted: &mut Wanted<'_>,
) -> RoutesPlan {
    let mut out = RoutesPlan::default();
    let mut keep_routes = BTreeSet::new();
    // Contour settings Koperator accepts but that leave a route out (admission warned).
    out.problems.extend(koperator_shared::rules::kafkacluster::external::route_warnings(&cluster.spec));
    for controller in CONTROLLERS {
        let ar = api_resource(controller);
        let objects = objects(cluster, controller);
        for mut s in objects.services {
            owned_by(&mut s, owner.clone());
            out.services.insert(s.name_any());
            let live_service = live.services.get(&s.name_any());
            wanted.object(s, live_service, Object::Service);
        }
        if objects.routes.is_empty() {
            continue;
        }
        if let Some(why) = live.unreadable.get(&ar.kind) {
            let what = format!("the {} ingress controller's {} objects", controller.name(), ar.kind);
            out.problems.push(format!("{what} cannot be created: {why}"));
            continue;
        }
        for mut r in objects.routes {
            owned_by(&mut r, owner.clone());
            let key = (ar.kind.clone(), r.name_any());
            wanted.object(r, live.routes.get(&key), |r| Object::Route(Box::new(r)));
            keep_routes.insert(key);
        }
    }
    if cluster.spec.remove_unused_ingress_resources == Some(true) {
        let uid = wanted.uid;
        let services = live.services.iter().filter(|(name, s)| !out.services.contains(*name) && owned_by_uid(*s, uid));
        out.unused.extend(services.map(|(name, s)| Deletion {
            kind: OwnedKind::Service,
            name: name.clone(),
            uid: s.uid().unwrap_or_default(),
        }));
        let routes = live.routes.iter().filter(|(key, r)| !keep_routes.contains(*key) && owned_by_uid(*r, uid));
        out.unused.extend(routes.map(|((kind, name), r)| Deletion {
            kind: OwnedKind::Route(route_kind(kind)),
            name: name.clone(),
            uid: r.uid().unwrap_or_default(),
        }));
    }
    out
}

/// The controller whose route kind is `kind`.
fn route_kind(kind: &str) -> Controller {
    CONTROLLERS.into_iter().find(|c| api_resource(*c).kind == kind).unwrap_or(Controller::Contour)
}

/// The controller rendering routes of `obj`'s kind (`HTTPProxy` or `TLSRoute`).
pub fn controller_of(obj: &DynamicObject) -> Option<Controller> {
    let kind = obj.types.as_ref()?.kind.as_str();
    CONTROLLERS.into_iter().find(|c| api_resource(*c).kind == kind)
}
