//! Avro object container files, read with arrow-rs's own Avro reader (the
//! schema is the file's header, so nothing has to be inferred).

use std::io::Cursor;

use deltalake::arrow::array::RecordBatch;

/// The batches of an Avro OCF file; the error is the reason it was refused.
pub fn read_avro(bytes: &[u8]) -> std::result::Result<Vec<RecordBatch>, String> {
    let reader = arrow_avro::reader::ReaderBuilder::new()
        .with_batch_size(8192)
        .build(Cursor::new(bytes))
        .map_err(|e| format!("invalid Avro: {e}"))?;
    reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| format!("invalid Avro: {e}"))
}

/// Writes batches as one Avro OCF file (fixtures, the demo's landing files).
pub fn write_avro(batches: &[RecordBatch]) -> std::result::Result<Vec<u8>, String> {
    let Some(first) = batches.first() else { return Err("no batches".into()) };
    let mut writer =
        arrow_avro::writer::AvroWriter::new(Vec::new(), first.schema().as_ref().clone()).map_err(|e| e.to_string())?;
    for b in batches {
        writer.write(b).map_err(|e| e.to_string())?;
    }
    writer.finish().map_err(|e| e.to_string())?;
    Ok(writer.into_inner())
}
