# The kubectl checks (sourced by scripts/kubectl-conformance.sh, with `k` = kubectl + cache dir).
M="$WORK/manifests"
mkdir -p "$M"
NS=conformance

check "version reports the server" expect_output 'Server Version: v1\.33' k version
check "api-resources lists built-ins and Fleet-free CRD support" \
  expect_output 'customresourcedefinitions' k api-resources
check "api-resources shows short names and groups" expect_output 'deployments +deploy +apps/v1 +true +Deployment' k api-resources
# --- TLS and bearer tokens, as kube-apiserver
check "the kubeconfig names an https server and carries the CA" \
  expect_output '^https://127\.0\.0\.1:[0-9]+/clusters/upstream ok$' \
  bash -c 'kubectl config view --raw -o jsonpath="{.clusters[0].cluster.server} {.clusters[0].cluster.certificate-authority-data}" | sed -E "s/ .{100,}$/ ok/"'
check "a wrong bearer token gets 401 Unauthorized" \
  expect_failure 'Unauthorized|must be logged in' k --token=not-the-token get namespaces
# (kubectl without credentials would prompt for a password, so an anonymous request is made with
# curl, which also checks that the kubeconfig's CA verifies the server.)
anonymous_request() {
  kubectl config view --raw -o 'jsonpath={.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$WORK/ca.pem"
  curl -sS --cacert "$WORK/ca.pem" -w ' HTTP %{http_code}' \
    "$(kubectl config view --raw -o 'jsonpath={.clusters[0].cluster.server}')/api/v1/namespaces"
}
if command -v curl >/dev/null; then
  check "no bearer token gets 401 with a Status, over TLS the CA verifies" \
    expect_output '"reason": ?"Unauthorized".* HTTP 401$' anonymous_request
fi

# Manifests go through the JSON path every tool uses; typed commands (`kubectl create namespace`,
# `create configmap`, ...) send protobuf bodies, checked below.
mkobj() { # KIND NAME [NAMESPACE]: create a bare object from a manifest
  printf 'apiVersion: v1\nkind: %s\nmetadata:\n  name: %s\n%s' "$1" "$2" "${3:+  namespace: $3
}" | k create -f -
}
check "create namespace (kubectl create namespace, protobuf body)" \
  expect_output "namespace/$NS created" k create namespace "$NS"
check "namespace is Active" expect_output 'Active' k get namespace "$NS"

# --- imperative (typed, protobuf) commands
check "create configmap --from-literal" \
  expect_output 'configmap/literal created' k create configmap literal -n "$NS" --from-literal=color=blue --from-literal=size=small
check "the configmap holds the literals" \
  expect_output '^blue,small$' k get configmap literal -n "$NS" -o 'jsonpath={.data.color},{.data.size}'
check "create secret generic --from-literal" \
  expect_output 'secret/creds created' k create secret generic creds -n "$NS" --from-literal=password=hunter2
check "the secret data is base64 of the value" \
  expect_output '^aHVudGVyMg==$' k get secret creds -n "$NS" -o 'jsonpath={.data.password}'
check "create serviceaccount" expect_output 'serviceaccount/robot created' k create serviceaccount robot -n "$NS"
check "create role" expect_output 'role.rbac.authorization.k8s.io/reader created' \
  k create role reader -n "$NS" --verb=get --verb=list --resource=pods,configmaps
check "the role has its rules" \
  expect_output '^get list$' k get role reader -n "$NS" -o 'jsonpath={.rules[0].verbs[*]}'
check "create rolebinding" expect_output 'rolebinding.rbac.authorization.k8s.io/robot-reads created' \
  k create rolebinding robot-reads -n "$NS" --role=reader --serviceaccount="$NS:robot"
check "the rolebinding names its subject" \
  expect_output "^ServiceAccount robot $NS reader\$" k get rolebinding robot-reads -n "$NS" -o 'jsonpath={.subjects[0].kind} {.subjects[0].name} {.subjects[0].namespace} {.roleRef.name}'
check "create clusterrole" expect_output 'clusterrole.rbac.authorization.k8s.io/conformance-viewer created' \
  k create clusterrole conformance-viewer --verb=get --resource=nodes
check "create deployment" expect_output 'deployment.apps/hello created' \
  k create deployment hello -n "$NS" --image=nginx:1.27 --replicas=2 --port=80
check "the created deployment becomes Available" \
  k wait --for=condition=Available deployment/hello -n "$NS" --timeout=60s
check "kubectl scale" expect_output 'deployment.apps/hello scaled' k scale deployment hello -n "$NS" --replicas=3
hello_has_3() { [[ $(k get deployment hello -n "$NS" -o 'jsonpath={.status.readyReplicas}') == 3 ]]; }
check "the scaled deployment reaches 3 ready replicas" eventually 60 hello_has_3

# --- ReplicaSets: Deployments own ReplicaSets own Pods; a template change rolls out
check "get rs lists the deployment's ReplicaSet" eventually 30 \
  expect_output '^hello-[a-z0-9]+ +3 +3 +3 ' k get rs -n "$NS" -l app=hello --no-headers
check "the ReplicaSet carries pod-template-hash and is owned by the Deployment" \
  expect_output '^[a-z0-9]+ Deployment hello 1$' k get rs -n "$NS" -l app=hello \
  -o 'jsonpath={.items[0].metadata.labels.pod-template-hash} {.items[0].metadata.ownerReferences[0].kind} {.items[0].metadata.ownerReferences[0].name} {.items[0].metadata.annotations.deployment\.kubernetes\.io/revision}'
check "pods are owned by the ReplicaSet" \
  expect_output '^ReplicaSet ReplicaSet ReplicaSet$' k get pods -n "$NS" -l app=hello -o 'jsonpath={.items[*].metadata.ownerReferences[0].kind}'
check "set image starts a rollout" expect_output 'image updated' k set image deployment/hello -n "$NS" nginx=nginx:1.28
check "rollout status waits for the rollout to finish" \
  expect_output 'successfully rolled out' k rollout status deployment/hello -n "$NS" --timeout=90s
check "the new ReplicaSet has every replica, the old one none" \
  expect_output '^(0 3|3 0)$' k get rs -n "$NS" -l app=hello -o 'jsonpath={.items[*].spec.replicas}'
only_new_pods() { [[ $(k get pods -n "$NS" -l app=hello -o 'jsonpath={.items[*].spec.containers[0].image}') == "nginx:1.28 nginx:1.28 nginx:1.28" ]]; }
check "every pod runs the new image" eventually 60 only_new_pods
check "rollout history lists both revisions" expect_output '^2 ' k rollout history deployment/hello -n "$NS"

# --- client-side apply
cat >"$M/cm.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: $NS
  labels: {app: demo}
data:
  color: blue
  size: small
EOF
check "apply (client-side) creates" expect_output 'configmap/settings created' k apply -f "$M/cm.yaml"
sed -i 's/color: blue/color: green/; /size: small/d' "$M/cm.yaml"
check "apply (client-side) configures" expect_output 'configmap/settings configured' k apply -f "$M/cm.yaml"
check "apply removed the dropped key and changed the other" \
  expect_output '^green,$' k get configmap settings -n "$NS" -o 'jsonpath={.data.color},{.data.size}'
check "apply again is unchanged" expect_output 'configmap/settings unchanged' k apply -f "$M/cm.yaml"

# --- server-side apply and conflicts between managers
cat >"$M/ssa.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: owned
  namespace: $NS
data:
  replicas: "1"
EOF
check "apply --server-side creates" expect_output 'serverside-applied' k apply --server-side -f "$M/ssa.yaml"
sed -i 's/"1"/"2"/' "$M/ssa.yaml"
check "a second field manager conflicts" \
  expect_failure 'conflict' k apply --server-side --field-manager=other -f "$M/ssa.yaml"
check "the conflict names the owning manager and field" \
  expect_failure 'kubectl.*\.data\.replicas' k apply --server-side --field-manager=other -f "$M/ssa.yaml"
check "--force-conflicts takes ownership" \
  expect_output 'serverside-applied' k apply --server-side --field-manager=other --force-conflicts -f "$M/ssa.yaml"
check "managedFields record the new owner" \
  expect_output 'other' k get configmap owned -n "$NS" --show-managed-fields -o 'jsonpath={.metadata.managedFields[*].manager}'

# --- get output formats
cat >"$M/deploy.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: $NS
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
        env:
        - name: MODE
          value: prod
EOF
check "apply a deployment" expect_output 'deployment.apps/web created' k apply -f "$M/deploy.yaml"
check "get -o yaml" expect_output '^kind: Deployment' k get deployment web -n "$NS" -o yaml
check "get -o json" expect_output '"generation": 1' k get deployment web -n "$NS" -o json
check "get -o wide shows images" expect_output 'nginx:1\.27' k get deployment web -n "$NS" -o wide
check "get prints a table with columns" expect_output 'NAME +READY +UP-TO-DATE +AVAILABLE +AGE' k get deployments -n "$NS"
check "get by label selector" expect_output '^settings' k get configmaps -n "$NS" -l 'app in (demo)' -o name --no-headers -o custom-columns=N:.metadata.name
check "get with a field selector" expect_output '^owned$' k get configmaps -n "$NS" --field-selector metadata.name=owned -o custom-columns=N:.metadata.name --no-headers
check "get --chunk-size pages through lists" expect_output 'owned' k get configmaps -n "$NS" --chunk-size=1

check "apply rejects unknown fields (server-side strict validation)" expect_failure 'unknown field "spec.replica"' k apply -f - <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: typo, namespace: $NS}
spec:
  replica: 2
  selector: {matchLabels: {app: typo}}
  template:
    metadata: {labels: {app: typo}}
    spec: {containers: [{name: c, image: nginx}]}
EOF
check "nothing was created by the rejected apply" expect_failure 'NotFound' k get deployment typo -n "$NS"

# --- wait for a simulated Deployment
check "wait --for=condition=Available" k wait --for=condition=Available deployment/web -n "$NS" --timeout=60s

# --- watch sees changes made by another command
k get configmaps -n "$NS" --watch -o name >"$WORK/watch.out" 2>&1 &
WATCH_PID=$!
sleep 2
mkobj ConfigMap watched "$NS" >/dev/null 2>&1
watch_saw() { grep -q 'configmap/watched' "$WORK/watch.out"; }
check "get --watch sees a change made by another command" eventually 15 watch_saw
kill "$WATCH_PID" 2>/dev/null; wait "$WATCH_PID" 2>/dev/null

# --- label, annotate, patch
check "label" expect_output 'labeled' k label configmap settings -n "$NS" tier=backend
check "label is visible to selectors" expect_output 'settings' k get configmaps -n "$NS" -l tier=backend -o name
check "annotate" expect_output 'annotated' k annotate configmap settings -n "$NS" note=hello
check "annotation stored" expect_output '^hello$' k get configmap settings -n "$NS" -o 'jsonpath={.metadata.annotations.note}'
check "patch --type=merge" expect_output 'patched' k patch configmap settings -n "$NS" --type=merge -p '{"data":{"size":"large"}}'
check "patch --type=json" expect_output 'patched' k patch configmap settings -n "$NS" --type=json -p '[{"op":"replace","path":"/data/color","value":"red"}]'
check "merge and json patches applied" expect_output '^red,large$' k get configmap settings -n "$NS" -o 'jsonpath={.data.color},{.data.size}'
check "patch (strategic) merges containers by name" expect_output 'patched' \
  k patch deployment web -n "$NS" -p '{"spec":{"template":{"spec":{"containers":[{"name":"nginx","env":[{"name":"EXTRA","value":"1"}]}]}}}}'
check "strategic patch kept existing env and image" \
  expect_output '^MODE EXTRA nginx:1\.27$' k get deployment web -n "$NS" -o 'jsonpath={.spec.template.spec.containers[0].env[*].name} {.spec.template.spec.containers[0].image}'
check "spec change bumped generation" expect_output '^2$' k get deployment web -n "$NS" -o 'jsonpath={.metadata.generation}'
check "a label change does not bump generation" k label deployment web -n "$NS" touched=yes
check "generation still 2" expect_output '^2$' k get deployment web -n "$NS" -o 'jsonpath={.metadata.generation}'

# --- delete with a finalizer
check "create an object with a finalizer" k apply -f - <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: guarded
  namespace: $NS
  finalizers: [example.com/keep]
EOF
check "delete --wait=false accepts" k delete configmap guarded -n "$NS" --wait=false
check "object stays with a deletionTimestamp" \
  expect_output '[0-9]{4}-' k get configmap guarded -n "$NS" -o 'jsonpath={.metadata.deletionTimestamp}'
check "removing the finalizer" k patch configmap guarded -n "$NS" --type=merge -p '{"metadata":{"finalizers":null}}'
check "then the object is gone" expect_failure 'NotFound' k get configmap guarded -n "$NS"

# --- ownerReference cascade
check "create an owner" mkobj ConfigMap owner "$NS"
OWNER_UID=$(k get configmap owner -n "$NS" -o 'jsonpath={.metadata.uid}' 2>/dev/null)
check "create a dependent" k apply -f - <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: dependent
  namespace: $NS
  ownerReferences:
  - apiVersion: v1
    kind: ConfigMap
    name: owner
    uid: $OWNER_UID
EOF
check "delete the owner" k delete configmap owner -n "$NS"
dependent_gone() { ! k get configmap dependent -n "$NS" >/dev/null 2>&1; }
check "the dependent is garbage collected" eventually 15 dependent_gone

# --- CRD, custom resource, printer columns, status subresource
check "apply a CRD" k apply -f - <<EOF
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Phase, type: string, jsonPath: .status.phase}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              color: {type: string}
              size: {type: integer, default: 3}
          status:
            type: object
            properties:
              phase: {type: string}
EOF
check "the CRD is established" k wait --for=condition=Established crd/widgets.example.com --timeout=20s
check "create a custom resource" k apply -f - <<EOF
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w1
  namespace: $NS
spec:
  color: purple
EOF
check "list shows printer columns" expect_output 'NAME +COLOR +PHASE' k get widgets -n "$NS"
check "list shows the column values" expect_output 'w1 +purple' k get wd -n "$NS"
check "schema defaults were applied" expect_output '^3$' k get widget w1 -n "$NS" -o 'jsonpath={.spec.size}'
check "status changed via --subresource=status" \
  k patch widget w1 -n "$NS" --subresource=status --type=merge -p '{"status":{"phase":"Ready"}}'
check "status is visible in the Phase column" expect_output 'w1 +purple +Ready' k get widgets -n "$NS"
check "the main resource ignores status changes" \
  k patch widget w1 -n "$NS" --type=merge -p '{"status":{"phase":"Broken"}}'
check "status unchanged by a main-resource patch" expect_output '^Ready$' k get widget w1 -n "$NS" -o 'jsonpath={.status.phase}'
check "strategic merge patch is refused for custom resources" \
  expect_failure 'UnsupportedMediaType|not supported|unknown format' k patch widget w1 -n "$NS" --type=strategic -p '{"spec":{"color":"x"}}'
check "delete the CRD" k delete crd widgets.example.com
kind_gone() { ! k get widgets -n "$NS" >/dev/null 2>&1; }
check "its kind is no longer served" eventually 15 kind_gone

# --- errors with kube-apiserver's codes
check "unknown resource type" expect_failure "doesn't have a resource type|NotFound|the server could not find" k get gizmos
check "invalid label selector" expect_failure 'unable to parse requirement|BadRequest|invalid' k get configmaps -n "$NS" -l 'a in b'
check "creating in a missing namespace" expect_failure 'NotFound' mkobj ConfigMap x does-not-exist
check "creating twice" expect_failure 'AlreadyExists' mkobj ConfigMap watched "$NS"

# --- ServiceAccount tokens and RBAC: an identity outside system:masters gets what its bindings allow
check "create a ServiceAccount for RBAC checks" k create serviceaccount auditor -n "$NS"
AUDITOR_TOKEN=$(k create token auditor -n "$NS" 2>&1)
auditor() { kubectl --cache-dir "$CACHE-auditor" --request-timeout=20s --token="$AUDITOR_TOKEN" "$@"; }
check "kubectl create token issues a bound token" expect_output '^ey' echo "$AUDITOR_TOKEN"
check "auth whoami names the ServiceAccount" expect_output "system:serviceaccount:$NS:auditor" auditor auth whoami
check "auth whoami lists its groups" expect_output "system:serviceaccounts:$NS" auditor auth whoami
check "can-i: no before any binding" expect_failure '^no' auditor auth can-i list configmaps -n "$NS"
check "a denied list gets kube-apiserver's Forbidden message" \
  expect_failure "configmaps is forbidden: User \"system:serviceaccount:$NS:auditor\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"$NS\"" \
  auditor get configmaps -n "$NS"
check "create a Role" k create role cm-reader -n "$NS" --verb=get,list,watch --resource=configmaps
check "bind it to the ServiceAccount" k create rolebinding auditor-cm -n "$NS" --role=cm-reader --serviceaccount="$NS:auditor"
check "can-i: yes in its namespace" expect_output '^yes' auditor auth can-i watch configmaps -n "$NS"
check "can-i: no in another namespace" expect_failure '^no' auditor auth can-i list configmaps -n default
check "can-i: no for a verb the Role lacks" expect_failure '^no' auditor auth can-i delete configmaps -n "$NS"
check "can-i --list shows the Role's rules" expect_output 'configmaps +\[\] +\[\] +\[get list watch\]' auditor auth can-i --list -n "$NS"
check "the admin acting as the ServiceAccount (--as) has its permissions" \
  expect_output '^yes' k auth can-i list configmaps -n "$NS" --as="system:serviceaccount:$NS:auditor"
check "and its denials" \
  expect_failure 'cannot list resource "configmaps" in API group "" in the namespace "default"' \
  k get configmaps -n default --as="system:serviceaccount:$NS:auditor"
check "the ServiceAccount may not impersonate" \
  expect_failure 'cannot impersonate resource "users"' auditor get configmaps -n "$NS" --as=bob
check "the ServiceAccount reads configmaps in its namespace" expect_output 'watched' auditor get configmaps -n "$NS"
check "but not in another namespace" expect_failure 'Forbidden|forbidden' auditor get configmaps -n default
check "nor across all namespaces" expect_failure 'at the cluster scope' auditor get configmaps -A
check "nor writes" expect_failure 'cannot create resource "configmaps"' auditor create configmap denied -n "$NS"
check "admin can-i is always yes" expect_output '^yes' k auth can-i '*' '*' --all-namespaces
check "a ClusterRoleBinding grants cluster-wide reads" \
  k create clusterrolebinding "auditor-view-$NS" --clusterrole=view --serviceaccount="$NS:auditor"
check "can-i across all namespaces after the ClusterRoleBinding" expect_output '^yes' auditor auth can-i list configmaps -A
check "delete the ClusterRoleBinding" k delete clusterrolebinding "auditor-view-$NS"
check "a token Secret of the ServiceAccount" k create -f - <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: auditor-token
  namespace: $NS
  annotations:
    kubernetes.io/service-account.name: auditor
type: kubernetes.io/service-account-token
EOF
token_filled() { [[ -n $(k get secret auditor-token -n "$NS" -o 'jsonpath={.data.token}') ]]; }
check "the token controller fills in its token" eventually 20 token_filled
SECRET_TOKEN=$(k get secret auditor-token -n "$NS" -o 'jsonpath={.data.token}' | base64 -d)
secret_auditor() { kubectl --cache-dir "$CACHE-auditor" --request-timeout=20s --token="$SECRET_TOKEN" "$@"; }
check "the Secret's token authenticates as the ServiceAccount" expect_output '^yes' secret_auditor auth can-i get configmaps -n "$NS"
check "deleting the Secret revokes its token" k delete secret auditor-token -n "$NS"
check "a revoked token is Unauthorized" expect_failure 'Unauthorized' secret_auditor get configmaps -n "$NS"

# --- delete the namespace with everything in it
check "delete namespace" k delete namespace "$NS" --timeout=30s
check "namespace is gone" expect_failure 'NotFound' k get namespace "$NS"

# --- a downstream cluster has its own kubeconfig and state
check "downstream kubeconfig works" expect_output 'default' kubectl --cache-dir "$CACHE-sim1" --kubeconfig "$WORK/sim/clusters/sim-1.kubeconfig" get namespaces
