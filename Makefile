# The two commands of the README:
#   make demo   install (if needed) and run the main job: `equivox demo`
#   make test   install with test tools (if needed) and run the test suite
.PHONY: demo test install

demo:
	scripts/install.sh
	.venv/bin/equivox demo $(ARGS)

test:
	scripts/install.sh --test
	.venv/bin/python -m pytest -q -n 2 --durations=15 $(ARGS)
