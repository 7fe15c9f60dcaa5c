# The two commands a newcomer needs are `make demo` and `make test`; see README.md.
.PHONY: demo test lint cluster-up cluster-down

demo:            ## Local control plane + operator + example Text2ImageService + a generated PNG
	bash hack/demo.sh  # REAL=1: real containers on a real kubelet node (root; docs/real-node.md)

test:            ## Lint, unit, server and end-to-end tests (builds what it needs)
	bash hack/test.sh

lint:
	bash hack/lint.sh

cluster-up:      ## Start the local control plane (prints the KUBECONFIG to export)
	bash hack/cluster.sh up

cluster-down:
	bash hack/cluster.sh down
