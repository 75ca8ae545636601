# Reference solutions of the exercises (演習) of notebooks/00_gpu_check.ipynb, for teachers and tests.
# Each `# %% 演習 N` section is what a student writes into the answer cell; it runs in the notebook's
# namespace (timings, ... are the notebook's), reads it and changes nothing but answer_N.
# Run the notebook with `-p solutions True` to see every check say 正解です.
# ruff: noqa: F821

# %% 演習 1
# GFLOP/s = (2 N^3 x repeats) / (time of all repeats): both grow with the repeats, so the rate stays the same;
# only the noise of a shorter measurement differs.
answer_1 = 1

# %% 演習 2
# 2N^3 operations: doubling N multiplies the work (and, at the same speed, the time) by 2^3.
answer_2 = 2**3

# %% 演習 3
first = timings[0]  # the first CPU measurement
answer_3 = 2 * 8192**3 / (first["gflops"] * 1e9)  # operations / (operations per second)

# %% 演習 4
answer_4 = """
順番に、安いものから確かめます。
1. `pip list | grep -i tensorflow`: `tensorflow` と `tensorflow-cpu` が両方入っていないか(同じ tensorflow/
   フォルダに二つの wheel が書き込まれ、後から入れた方が勝ちます)。版はイメージの `%post` の `==` と同じか。
2. `tf.sysconfig.get_build_info()` の `cuda_version` と `tf.test.is_built_with_cuda()`: CUDA 付きのビルドか。
3. ログに `Cannot dlopen some GPU libraries` が出ていないか: TensorFlow が探す版の CUDA / cuDNN が見つからない
   (固定しない pip install が TensorFlow を、イメージの CUDA と合わない別の版に置き換えた、など)。
4. `PYTHONNOUSERSITE=1` か: `~/.local` の別の TensorFlow が読み込まれていないか(`tf.__file__` の場所)。
5. PyTorch に GPU が見えているので、ドライバと `--nv` は問題ありません。直し方は、イメージの版を `==` で入れ直すか、
   教材の `.def` からイメージを作り直すことです。
"""
