# Deployment checks (Dockerfile's companions: docker-compose.yml, deploy/**).
# Included from the root Makefile:  include deploy/check.mk
# `make check-deploy` validates the Helm chart (helm lint/template,
# kubeconform), docker-compose.yml (compose-go), deploy/nginx/nginx.conf
# (nginx -t) and the Grafana dashboard, with no Docker engine or cluster.
# Tools are pinned in deploy/check.sh and cached in
# $(ROOMCAST_DEPLOY_CACHE) (default ~/.cache/roomcast-deploy).

.PHONY: check-deploy
check-deploy:
	@# The checkers are a module of their own: lint and test them too.
	cd deploy/check && $(GO) vet ./... && $(GO) test -count=1 ./...
	@test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	cd deploy/check && $(STATICCHECK) ./...
	bash deploy/check.sh
