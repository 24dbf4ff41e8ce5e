#pragma once
// Umbrella header of the core library.
#include <podwrangler/constants.hpp>
#include <podwrangler/errors.hpp>
#include <podwrangler/model.hpp>
#include <podwrangler/provider.hpp>
#include <podwrangler/providers/docker.hpp>
#include <podwrangler/providers/kubernetes.hpp>
#include <podwrangler/providers/local.hpp>
#include <podwrangler/providers/plaintty.hpp>
#include <podwrangler/redact.hpp>
#include <podwrangler/registry.hpp>
#include <podwrangler/secret.hpp>
#include <podwrangler/sentinel.hpp>
#include <podwrangler/session.hpp>
#include <podwrangler/version.hpp>
