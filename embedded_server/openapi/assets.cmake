# Placeholder until the Swagger UI embedding lands.
add_library(podwrangler_docs_assets INTERFACE)
