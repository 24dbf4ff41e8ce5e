#include "embedded_server/server.hpp"
#include "cli/context.hpp"
int pw_layer_probe_allowed_cli() { return 0; }
