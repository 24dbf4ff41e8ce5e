#include "cli/context.hpp"
int pw_layer_probe_upward() { return 0; }
