"""Pipeline steps and what they need on a cluster: the step functions the Kubeflow components
call (steps), the run's store (store, dataref, checkpoints), multi-node jobs (pytorchjob,
trainjob, k8sjob, multinode), recurring runs (schedule) and the services run-containers starts
(services). The DAG and its launcher (compile, run-local, submit, schedule) are in pipelines/."""
