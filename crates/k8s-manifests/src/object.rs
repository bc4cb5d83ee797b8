//! `Object`: one rendered Kubernetes object, typed.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::crd::{
    AlertmanagerConfigSpec, AlertmanagerSpec, Custom, PrometheusRuleSpec, PrometheusSpec,
    ScheduleSpec, ServiceMonitorSpec,
};

macro_rules! objects {
    ($($variant:ident($ty:ty) = $kind:literal),* $(,)?) => {
        /// One object of the rendering. Serialises exactly as the API object.
        #[derive(Clone, Debug, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum Object {
            $($variant(Box<$ty>),)*
        }

        impl Object {
            /// The object's `kind`.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $kind,)*
                }
            }

            pub fn metadata(&self) -> &ObjectMeta {
                match self {
                    $(Self::$variant(o) => &o.metadata,)*
                }
            }

            pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
                match self {
                    $(Self::$variant(o) => &mut o.metadata,)*
                }
            }
        }

        $(
            impl From<$ty> for Object {
                fn from(o: $ty) -> Self {
                    Self::$variant(Box::new(o))
                }
            }
        )*
    };
}

objects! {
    Namespace(Namespace) = "Namespace",
    ServiceAccount(ServiceAccount) = "ServiceAccount",
    ClusterRole(ClusterRole) = "ClusterRole",
    ClusterRoleBinding(ClusterRoleBinding) = "ClusterRoleBinding",
    Role(Role) = "Role",
    RoleBinding(RoleBinding) = "RoleBinding",
    ConfigMap(ConfigMap) = "ConfigMap",
    Service(Service) = "Service",
    Deployment(Deployment) = "Deployment",
    StatefulSet(StatefulSet) = "StatefulSet",
    DaemonSet(DaemonSet) = "DaemonSet",
    PodDisruptionBudget(PodDisruptionBudget) = "PodDisruptionBudget",
    HorizontalPodAutoscaler(HorizontalPodAutoscaler) = "HorizontalPodAutoscaler",
    NetworkPolicy(NetworkPolicy) = "NetworkPolicy",
    Prometheus(Custom<PrometheusSpec>) = "Prometheus",
    ServiceMonitor(Custom<ServiceMonitorSpec>) = "ServiceMonitor",
    PrometheusRule(Custom<PrometheusRuleSpec>) = "PrometheusRule",
    Alertmanager(Custom<AlertmanagerSpec>) = "Alertmanager",
    AlertmanagerConfig(Custom<AlertmanagerConfigSpec>) = "AlertmanagerConfig",
    Schedule(Custom<ScheduleSpec>) = "Schedule",
}

impl Object {
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    /// Whether the object is a custom resource (its CRD must exist first).
    pub fn is_custom(&self) -> bool {
        matches!(
            self,
            Self::Prometheus(_)
                | Self::ServiceMonitor(_)
                | Self::PrometheusRule(_)
                | Self::Alertmanager(_)
                | Self::AlertmanagerConfig(_)
                | Self::Schedule(_)
        )
    }

    /// The pod template of a workload.
    pub fn pod_spec(&self) -> Option<&k8s_openapi::api::core::v1::PodSpec> {
        let template = match self {
            Self::Deployment(d) => &d.spec.as_ref()?.template,
            Self::StatefulSet(s) => &s.spec.as_ref()?.template,
            Self::DaemonSet(d) => &d.spec.as_ref()?.template,
            _ => return None,
        };
        template.spec.as_ref()
    }

    /// The pod labels of a workload.
    pub fn pod_labels(&self) -> Option<&std::collections::BTreeMap<String, String>> {
        let template = match self {
            Self::Deployment(d) => &d.spec.as_ref()?.template,
            Self::StatefulSet(s) => &s.spec.as_ref()?.template,
            Self::DaemonSet(d) => &d.spec.as_ref()?.template,
            _ => return None,
        };
        template.metadata.as_ref()?.labels.as_ref()
    }

    /// `kind/namespace/name`, for messages.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.kind(),
            self.namespace().unwrap_or("-"),
            self.name()
        )
    }
}
