#pragma once
namespace pw {
const char* version() noexcept;
}
