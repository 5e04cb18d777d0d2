from pqgrid.convert import gzip_tflite
from pqgrid.io import run_script

run_script(snakemake.log[0], gzip_tflite, tflite=snakemake.input.tflite, out_gz=snakemake.output.gz)
