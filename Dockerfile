# The operator image: the upstream ansible-operator base (same version as hack/tools/ansible-operator
# builds for local runs) with this collection installed from its Galaxy tarball.
#   ansible-galaxy collection build --force && docker build -t pgc-operator:0.1.0 .
ARG ANSIBLE_OPERATOR_VERSION=v1.42.2
FROM quay.io/operator-framework/ansible-operator:${ANSIBLE_OPERATOR_VERSION}

# The collection's dependencies first, so that a change of the collection alone reuses this layer:
# its Python packages (the API client of its action plugins), then its collections.
COPY requirements.txt requirements.yml ${HOME}/
USER 0
RUN python3 -m pip install --no-cache-dir -r ${HOME}/requirements.txt
USER 1001
RUN ansible-galaxy collection install -r ${HOME}/requirements.yml \
 && chmod -R ug+rwx ${HOME}/.ansible

COPY postgres-cluster-*.tar.gz /tmp/
RUN ansible-galaxy collection install /tmp/postgres-cluster-*.tar.gz \
 && chmod -R ug+rwx ${HOME}/.ansible

COPY watches.yaml ${HOME}/watches.yaml

# The per-cluster metrics server, run as a second container of the operator pod
# (config/manager/manager.yaml): the base image's python3 and kubernetes client, and the module_utils
# of the collection installed above.
COPY metrics/cluster_metrics.py /opt/pgc/metrics/cluster_metrics.py

# Facts are never used: skip gathering them on every reconcile.
ENV ANSIBLE_GATHERING=explicit
