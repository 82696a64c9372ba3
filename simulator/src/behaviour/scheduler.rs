//! The scheduler check: which nodes a pod fits, and kube-scheduler's message when none does.
