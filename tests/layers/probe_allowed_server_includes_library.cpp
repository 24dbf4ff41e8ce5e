#include <podwrangler/session.hpp>
#include "embedded_server/routes.hpp"
int pw_layer_probe_allowed_server() { return 0; }
