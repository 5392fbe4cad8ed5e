"""The writer's output loads with the official safetensors reader (SKIPPED without it)."""
import subprocess
import sys

try:
    import numpy as np
    import safetensors
    from safetensors import safe_open
except ImportError:
    print("SKIPPED: python safetensors/numpy not installed")
    sys.exit(77)

exe, path = sys.argv[1], sys.argv[2]
subprocess.run([exe, path], check=True, stdout=subprocess.DEVNULL)
with safe_open(path, "np") as f:  # the official reader's validation of header and offsets
    meta = f.metadata()
assert meta == {"format": "pt", "prompts": '["café", "a \\"q\\""]'}, meta
with open(path, "rb") as fh:
    raw = safetensors.deserialize(fh.read())
NP = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}
t = {}
for name, d in raw:
    a = np.frombuffer(bytes(d["data"]), dtype=NP[d["dtype"]]).reshape(d["shape"])
    if d["dtype"] == "BF16":  # numpy has no bfloat16: widen the bits
        a = (a.astype(np.uint32) << 16).view(np.float32)
    t[name] = a
assert set(t) == {"a.f32", "z.f16", "m.bf16", "scalar", "empty"}, set(t)
np.testing.assert_array_equal(t["a.f32"], np.array([[1.5, -2, 3.25], [0, -0.0, 1e-7]], np.float32))
np.testing.assert_array_equal(t["z.f16"], np.array([-0.25, 0.25, 0.75], np.float16))
# 100*i + 0.5 rounded to bfloat16's 8 significant bits (200.5 is a tie: to even)
np.testing.assert_array_equal(t["m.bf16"], np.array([0.5, 100.5, 200, 300, 400], np.float32))
assert t["scalar"].shape == () and t["scalar"] == 42
assert t["empty"].shape == (0, 4)
print("py_check: the official reader loads the writer's output")
