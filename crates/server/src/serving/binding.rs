//! How a model's features sit in its graph inputs: the translation between validated feature
//! columns and graph tensors, following the binding resolved at load (one `[N, F]` tensor for
//! packed graphs, one `[N]`/`[N, 1]` tensor per feature otherwise, each in the exact element
//! type the graph declares), and back (to check tensors that arrived as tensors against the
//! same value rules as rows).

use warden_contract::{Binding, ColumnValues, Feature, FeatureColumns};
use warden_runtime::{DataType, NamedTensor, Signature, Tensor, TensorData};

/// Turns validated columns into the graph's input tensors.
pub(super) fn encode(
    columns: &FeatureColumns,
    binding: &Binding,
    signature: &Signature,
) -> Result<Vec<NamedTensor>, String> {
    let rows = columns.rows;
    match binding {
        Binding::Packed { input } => {
            let spec = signature
                .input(input)
                .ok_or_else(|| format!("graph input `{input}` vanished"))?;
            let width = columns.columns.len();
            let mut flat = vec![0.0f64; rows * width];
            for (c, column) in columns.columns.iter().enumerate() {
                for (r, x) in as_f64(&column.values)?.into_iter().enumerate() {
                    flat[r * width + c] = x;
                }
            }
            Ok(vec![NamedTensor {
                name: input.clone(),
                tensor: Tensor::new(vec![rows, width], numeric(spec.data_type, flat)?)?,
            }])
        }
        Binding::PerColumn => columns
            .columns
            .iter()
            .map(|column| {
                let spec = signature
                    .input(&column.name)
                    .ok_or_else(|| format!("graph input `{}` vanished", column.name))?;
                let shape = if spec.shape.len() == 1 {
                    vec![rows]
                } else {
                    vec![rows, 1]
                };
                let data = match &column.values {
                    ColumnValues::Text(values) if spec.data_type == DataType::String => {
                        TensorData::String(values.clone())
                    }
                    ColumnValues::Bool(values) if spec.data_type == DataType::Bool => {
                        TensorData::Bool(values.clone())
                    }
                    ColumnValues::Int(values) if spec.data_type == DataType::I64 => {
                        TensorData::I64(values.clone())
                    }
                    other => numeric(spec.data_type, as_f64(other)?)?,
                };
                Ok(NamedTensor {
                    name: column.name.clone(),
                    tensor: Tensor::new(shape, data)?,
                })
            })
            .collect(),
    }
}

fn as_f64(values: &ColumnValues) -> Result<Vec<f64>, String> {
    Ok(match values {
        ColumnValues::Float(v) => v.clone(),
        ColumnValues::Int(v) => v.iter().map(|&x| x as f64).collect(),
        ColumnValues::Bool(v) => v.iter().map(|&b| f64::from(u8::from(b))).collect(),
        ColumnValues::Text(_) => return Err("a text column cannot feed a numeric input".into()),
    })
}

/// Numbers in the graph's element type. The contract was checked against the graph at load,
/// so only numeric element types reach here.
fn numeric(dtype: DataType, values: Vec<f64>) -> Result<TensorData, String> {
    Ok(match dtype {
        DataType::F32 => TensorData::F32(values.into_iter().map(|x| x as f32).collect()),
        DataType::F64 => TensorData::F64(values),
        DataType::I64 => TensorData::I64(values.into_iter().map(|x| x as i64).collect()),
        DataType::I32 => TensorData::I32(values.into_iter().map(|x| x as i32).collect()),
        DataType::Bool => TensorData::Bool(values.into_iter().map(|x| x != 0.0).collect()),
        other => return Err(format!("cannot feed numbers to a {other} input")),
    })
}

/// The feature columns inside graph input tensors (the inverse of [`encode`]), each with a
/// function that gives a value's flat position in its tensor, so V2 requests can be checked
/// against the same value rules as rows. `None` when an input the binding needs is absent.
pub(super) fn decode_columns(
    features: &[Feature],
    binding: &Binding,
    inputs: &[NamedTensor],
) -> Option<Vec<(ColumnValues, usize, ColumnLayout)>> {
    let position = |name: &str| inputs.iter().position(|input| input.name == name);
    match binding {
        Binding::PerColumn => features
            .iter()
            .map(|feature| {
                let index = position(&feature.name)?;
                let values = column_values(&inputs[index].tensor.data, 0, 1);
                Some((
                    values,
                    index,
                    ColumnLayout {
                        column: 0,
                        width: 1,
                    },
                ))
            })
            .collect(),
        Binding::Packed { input } => {
            let index = position(input)?;
            let width = features.len();
            Some(
                (0..width)
                    .map(|column| {
                        let values = column_values(&inputs[index].tensor.data, column, width);
                        (values, index, ColumnLayout { column, width })
                    })
                    .collect(),
            )
        }
    }
}

/// Where a column's values sit in a row-major tensor.
#[derive(Debug, Clone, Copy)]
pub(super) struct ColumnLayout {
    column: usize,
    width: usize,
}

impl ColumnLayout {
    /// The flat index of `row`'s value.
    pub(super) fn flat_index(self, row: usize) -> usize {
        row * self.width + self.column
    }
}

fn column_values(data: &TensorData, column: usize, width: usize) -> ColumnValues {
    fn pick<T: Copy, U>(values: &[T], column: usize, width: usize, f: impl Fn(T) -> U) -> Vec<U> {
        values
            .iter()
            .skip(column)
            .step_by(width)
            .map(|&x| f(x))
            .collect()
    }
    match data {
        TensorData::F32(v) => ColumnValues::Float(pick(v, column, width, f64::from)),
        TensorData::F64(v) => ColumnValues::Float(pick(v, column, width, |x| x)),
        TensorData::I8(v) => ColumnValues::Int(pick(v, column, width, i64::from)),
        TensorData::I16(v) => ColumnValues::Int(pick(v, column, width, i64::from)),
        TensorData::I32(v) => ColumnValues::Int(pick(v, column, width, i64::from)),
        TensorData::I64(v) => ColumnValues::Int(pick(v, column, width, |x| x)),
        TensorData::U8(v) => ColumnValues::Int(pick(v, column, width, i64::from)),
        TensorData::U16(v) => ColumnValues::Int(pick(v, column, width, i64::from)),
        TensorData::U32(v) => ColumnValues::Int(pick(v, column, width, i64::from)),
        TensorData::U64(v) => ColumnValues::Float(pick(v, column, width, |x| x as f64)),
        TensorData::Bool(v) => ColumnValues::Bool(pick(v, column, width, |x| x)),
        TensorData::String(v) => {
            ColumnValues::Text(v.iter().skip(column).step_by(width).cloned().collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use warden_contract::FeatureColumn;
    use warden_runtime::TensorSpec;

    use super::*;

    fn spec(name: &str, data_type: DataType, shape: &[i64]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            data_type,
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn packed_columns_become_one_row_major_tensor() {
        let columns = FeatureColumns {
            rows: 2,
            columns: vec![
                FeatureColumn {
                    name: "a".into(),
                    values: ColumnValues::Float(vec![1.0, 2.0]),
                },
                FeatureColumn {
                    name: "b".into(),
                    values: ColumnValues::Int(vec![3, 4]),
                },
            ],
        };
        let signature = Signature {
            inputs: vec![spec("x", DataType::F32, &[-1, 2])],
            outputs: vec![],
        };
        let binding = Binding::Packed { input: "x".into() };
        let tensors = encode(&columns, &binding, &signature).unwrap();
        assert_eq!(tensors[0].tensor.shape, vec![2, 2]);
        assert_eq!(
            tensors[0].tensor.data,
            TensorData::F32(vec![1.0, 3.0, 2.0, 4.0])
        );
    }
}
