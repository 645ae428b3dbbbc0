{
  "targets": [
    {
      "target_name": "ezipc_shm",
      "sources": ["native/shm.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [["OS!='linux'", {"sources!": ["native/shm.c"], "type": "none"}]]
    },
    {
      "target_name": "ezipc_aead",
      "sources": ["native/aead.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [["OS!='linux'", {"sources!": ["native/aead.c"], "type": "none"}]]
    }
  ]
}
