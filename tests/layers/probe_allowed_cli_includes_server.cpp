#include "cli/context.hpp"
#include "embedded_server/server.hpp"
int pw_layer_probe_allowed_cli() { return 0; }
