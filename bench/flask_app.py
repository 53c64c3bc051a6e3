"""The seeds' baseline: a textbook Flask app with a pydantic request model and the model loaded
at import, served by gunicorn with sync workers. MODEL_PATH is a joblib file, or, with
BACKEND=onnxruntime, ONNX_PATH an ONNX file run by onnxruntime. It takes the same KServe V2 JSON
body as warden, so one load generator request fits every server."""

import os

import numpy as np
from flask import Flask, jsonify, request
from pydantic import BaseModel, ValidationError

app = Flask(__name__)

if os.environ.get("BACKEND") == "onnxruntime":
    import onnxruntime

    session = onnxruntime.InferenceSession(os.environ["ONNX_PATH"], providers=["CPUExecutionProvider"])

    def predict(x):
        label, proba = session.run(None, {"float_input": x})
        return label, proba
else:
    import joblib

    model = joblib.load(os.environ["MODEL_PATH"])

    def predict(x):
        return model.predict(x), model.predict_proba(x)


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class InferRequest(BaseModel):
    inputs: list[Tensor]


@app.post("/v2/models/<name>/infer")
def infer(name):
    try:
        body = InferRequest.model_validate(request.get_json())
    except ValidationError as error:
        return jsonify({"error": str(error)}), 400
    tensor = body.inputs[0]
    x = np.asarray(tensor.data, dtype=np.float32).reshape(tensor.shape)
    label, proba = predict(x)
    return jsonify({
        "model_name": name,
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [len(label)], "data": np.asarray(label).tolist()},
            {"name": "probabilities", "datatype": "FP32", "shape": list(proba.shape), "data": proba.ravel().tolist()},
        ],
    })
